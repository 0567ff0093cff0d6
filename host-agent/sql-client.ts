import { ErrorNames, RewindError } from "../core/errors.js";
import { runTool } from "./tool.js";

export type Row = Record<string, string | null>;

/**
 * Runs SQL through the engine's command-line client (`mariadb` or `mysql`), logging in with a
 * defaults file so no password is ever in argv. Results come back as rows keyed by column.
 */
export class SqlClient {
  constructor(
    private readonly clientBinary: string,
    private readonly defaultsFile: string,
    /**
     * Called once when the server refuses the credentials (a rotation changed the password under
     * a long-running command): rewrites the defaults file with working ones; the statement is
     * then tried again.
     */
    private readonly refresh?: () => Promise<void>,
  ) {}

  async rows(sql: string): Promise<Row[]> {
    try {
      return await this.run(sql);
    } catch (error) {
      if (!this.refresh || !(error instanceof RewindError && error.name === ErrorNames.credentials))
        throw error;
      await this.refresh();
      return this.run(sql);
    }
  }

  private async run(sql: string): Promise<Row[]> {
    let stdout: string;
    try {
      ({ stdout } = await runTool(
        this.clientBinary,
        [`--defaults-extra-file=${this.defaultsFile}`, "--batch", "--raw", "--column-names"],
        { input: sql },
      ));
    } catch (error) {
      const message = (error as Error).message;
      if (/Access denied/i.test(message)) {
        throw new RewindError(
          ErrorNames.credentials,
          "the database refused the account's credentials: the server's password differs from the cluster's accounts secret (rewind/<cluster>/accounts) or the account does not exist; run `rewind-agent users ensure` on the primary, which makes them match",
          message,
        );
      }
      throw new RewindError(ErrorNames.sql, `the database refused a statement: ${message}`);
    }
    const lines = stdout.split("\n").filter((line) => line.length > 0);
    const header = lines.shift()?.split("\t") ?? [];
    return lines.map((line) => {
      const fields = line.split("\t");
      return Object.fromEntries(
        header.map((name, i) => [name, fields[i] === "NULL" ? null : (fields[i] ?? null)]),
      );
    });
  }

  async row(sql: string): Promise<Row> {
    const [first] = await this.rows(sql);
    if (!first) throw new RewindError(ErrorNames.sql, `query returned no row: ${sql}`);
    return first;
  }
}
