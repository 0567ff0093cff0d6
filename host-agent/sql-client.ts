import mysql, { type Connection, type QueryError } from "mysql2";
import { ErrorNames, RewindError } from "../core/errors.js";
import type { DatabaseCredentials } from "./secrets.js";

export type Row = Record<string, string | null>;

/** Where the server listens: its socket, or TCP host and port (as the CLI clients choose). */
export interface SqlEndpoint {
  readonly socket?: string;
  readonly host?: string;
  readonly port?: number;
}

/** A value bound into a statement with `?`: the client escapes it; it never appears in an error. */
export type SqlValue = string | number;

/** MySQL and MariaDB refuse a login with ER_ACCESS_DENIED_ERROR, or 1698 for a socket account. */
const ACCESS_DENIED = new Set([1045, 1698]);

/**
 * Runs SQL over the mysql2 driver on one connection, opened at first use and kept for the
 * client's life (the streamer's status and role checks every few seconds reuse it), opened again
 * when the server closed it (a restart, a failover). Values come back as the text the server
 * sent, NULL as null, keyed by column name. Passwords go to the server only inside the
 * protocol's handshake or as bound values: never argv, environment, a file or an error message.
 * `close()` ends the connection; a command that does not call it keeps node running.
 */
export class SqlClient {
  private connection: Promise<Connection> | undefined;

  constructor(
    private readonly endpoint: SqlEndpoint,
    private credentials: DatabaseCredentials,
    /**
     * Called once when the server refuses the credentials (a rotation changed the password
     * before a reconnect): returns working ones, the connection is opened again with them and
     * the statement tried again.
     */
    private readonly refresh?: () => Promise<DatabaseCredentials>,
  ) {}

  /** The rows of the statement's result (of every statement's, for several separated by `;`). */
  async rows(sql: string, values?: readonly SqlValue[]): Promise<Row[]> {
    try {
      return await this.query(sql, values);
    } catch (error) {
      if (!this.refresh || !(error instanceof RewindError && error.name === ErrorNames.credentials))
        throw error;
      this.credentials = await this.refresh();
      await this.close();
      return this.query(sql, values);
    }
  }

  async row(sql: string, values?: readonly SqlValue[]): Promise<Row> {
    const [first] = await this.rows(sql, values);
    if (!first) throw new RewindError(ErrorNames.sql, `query returned no row: ${sql}`);
    return first;
  }

  /** Logs in (when not logged in yet): a refusal is thrown as a credentials error. */
  async connect(): Promise<void> {
    await this.open();
  }

  /**
   * Logs in afresh, beside the open connection (which stays logged in whatever the password
   * became): credentials the server no longer takes (a replayed ALTER USER, a rotation) are found
   * again through `refresh`, so tools started next with the defaults file log in too.
   */
  async verifyLogin(): Promise<void> {
    const probe = new SqlClient(this.endpoint, this.credentials);
    try {
      await probe.connect();
    } catch (error) {
      if (!this.refresh || !(error instanceof RewindError && error.name === ErrorNames.credentials))
        throw error;
      this.credentials = await this.refresh();
      await this.close();
    } finally {
      await probe.close();
    }
  }

  async close(): Promise<void> {
    const opening = this.connection;
    this.connection = undefined;
    const connection = await opening?.catch(() => undefined);
    if (!connection) return;
    await new Promise<void>((resolve) => connection.end(() => resolve()));
    connection.destroy();
  }

  private describeEndpoint(): string {
    const { socket, host, port } = this.endpoint;
    return this.usesSocket() ? `socket ${socket}` : `${host ?? "localhost"}:${port ?? 3306}`;
  }

  /** The socket unless a host other than localhost is named: what the mysql client does. */
  private usesSocket(): boolean {
    const { socket, host } = this.endpoint;
    return Boolean(socket) && (!host || host === "localhost");
  }

  private open(): Promise<Connection> {
    if (this.connection) return this.connection;
    const opening = new Promise<Connection>((resolve, reject) => {
      const { host, port, socket } = this.endpoint;
      const connection = mysql.createConnection({
        ...(this.usesSocket() ? { socketPath: socket } : { host: host ?? "localhost", port: port ?? 3306 }),
        user: this.credentials.username,
        password: this.credentials.password,
        connectTimeout: 20_000,
        multipleStatements: true,
        charset: "utf8mb4_general_ci",
      });
      // The server closing an idle connection (a restart) arrives here, not at a statement: the
      // next statement opens a new one.
      const forget = () => {
        if (this.connection === opening) this.connection = undefined;
      };
      connection.on("error", forget);
      connection.on("end", forget);
      connection.connect((error) => {
        if (!error) return resolve(connection);
        forget();
        connection.destroy();
        reject(this.connectFailure(error));
      });
    });
    this.connection = opening;
    return opening;
  }

  private connectFailure(error: QueryError): RewindError {
    if (error.errno !== undefined && ACCESS_DENIED.has(error.errno)) {
      return new RewindError(
        ErrorNames.credentials,
        `the database refused the account's credentials (${this.credentials.username}): the server's password differs from the cluster's accounts secret (rewind/<cluster>/accounts) or the account does not exist; run \`rewind-agent users ensure\` on the primary, which makes them match`,
        error.message,
      );
    }
    return new RewindError(
      ErrorNames.sql,
      `could not connect to the database at ${this.describeEndpoint()} (${error.message}); check that the server runs and that the agent's connection.socket (or host and port) names it`,
    );
  }

  private async query(sql: string, values?: readonly SqlValue[]): Promise<Row[]> {
    const connection = await this.open();
    return new Promise<Row[]>((resolve, reject) => {
      connection.query(
        {
          sql,
          values: values ? [...values] : undefined,
          // Every value as the server's text, as the mysql client prints it with --raw.
          typeCast: (field) => field.string(),
        },
        (error, result) => {
          if (!error) return resolve(rowsOf(result));
          reject(
            new RewindError(
              ErrorNames.sql,
              `the database refused a statement: ${redact(error.message, values)}`,
            ),
          );
        },
      );
    });
  }
}

/** A bound string (a password) replaced wherever the server's message quotes it. */
function redact(message: string, values: readonly SqlValue[] | undefined): string {
  let redacted = message;
  for (const value of values ?? []) {
    if (typeof value === "string" && value.length > 0) redacted = redacted.split(value).join("<redacted>");
  }
  return redacted;
}

/**
 * One statement gives its rows, or an OK packet; several give an array with one entry per
 * statement (rows or an OK packet each).
 */
function rowsOf(result: unknown): Row[] {
  if (!Array.isArray(result)) return [];
  const multiple = result.some((entry) => Array.isArray(entry) || isOkPacket(entry));
  if (!multiple) return result as Row[];
  return result.flatMap((entry) => (Array.isArray(entry) ? (entry as Row[]) : []));
}

function isOkPacket(entry: unknown): boolean {
  return (
    typeof entry === "object" && entry !== null && (entry as object).constructor?.name === "ResultSetHeader"
  );
}
