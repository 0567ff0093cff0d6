import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { freePort, run, track, waitFor } from "../processes.js";

/**
 * A private MariaDB server: its own datadir, socket and port, binary log with GTIDs, never the
 * system service. Used by the sandbox (`npm run demo`) and by the tests.
 */
export interface MariaDbServerOptions {
  /** A directory this server owns; it is created, and removed by `destroy()`. */
  readonly baseDir: string;
  readonly serverId: number;
  readonly port?: number;
  /** An existing datadir to start on (a restored backup) instead of initialising a new one. */
  readonly existingDatadir?: string;
  readonly innodbBufferPoolMiB?: number;
  /** Extra `key=value` lines for the [mysqld] group. */
  readonly extraConfig?: readonly string[];
}

export interface SqlUser {
  readonly user: string;
  readonly password: string;
}

export class MariaDbServer {
  private process?: ChildProcess;

  private constructor(
    readonly baseDir: string,
    readonly datadir: string,
    readonly port: number,
    readonly socket: string,
    readonly defaultsFile: string,
    readonly serverId: number,
  ) {}

  static async start(options: MariaDbServerOptions): Promise<MariaDbServer> {
    const server = await MariaDbServer.configure(options);
    if (!options.existingDatadir) {
      await run("mariadb-install-db", [
        `--defaults-file=${server.defaultsFile}`,
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
      ]);
    }
    await server.startProcess();
    return server;
  }

  /**
   * Writes the server's option file without starting it, for a server that something else
   * starts (the agent's restore, through `start-mariadbd.sh`).
   */
  static async configure(options: MariaDbServerOptions): Promise<MariaDbServer> {
    const baseDir = path.resolve(options.baseDir);
    mkdirSync(path.join(baseDir, "tmp"), { recursive: true });
    const datadir = options.existingDatadir ?? path.join(baseDir, "data");
    const port = options.port ?? (await freePort());
    const socket = path.join(baseDir, "mariadb.sock");
    const defaultsFile = path.join(baseDir, "my.cnf");
    const config = [
      "[mysqld]",
      ...(process.getuid?.() === 0 ? ["user=root"] : []),
      `datadir=${datadir}`,
      `socket=${socket}`,
      `port=${port}`,
      "bind-address=127.0.0.1",
      `pid-file=${path.join(baseDir, "mariadb.pid")}`,
      `log-error=${path.join(baseDir, "error.log")}`,
      `tmpdir=${path.join(baseDir, "tmp")}`,
      `log-bin=${path.join(datadir, "mariadb-bin")}`,
      `server-id=${options.serverId}`,
      "binlog_format=ROW",
      "gtid_strict_mode=1",
      "log_slave_updates=1",
      "skip-name-resolve",
      "character-set-server=utf8mb4",
      "collation-server=utf8mb4_general_ci",
      `innodb_buffer_pool_size=${options.innodbBufferPoolMiB ?? 128}M`,
      "innodb_log_file_size=64M",
      "max_connections=200",
      ...(options.extraConfig ?? []),
      "",
      "[client]",
      `socket=${socket}`,
      "",
    ].join("\n");
    writeFileSync(defaultsFile, config);
    return new MariaDbServer(baseDir, datadir, port, socket, defaultsFile, options.serverId);
  }

  private async startProcess(): Promise<void> {
    const log = openSync(path.join(this.baseDir, "mariadbd.out"), "a");
    const child = track(
      spawn("mariadbd", [`--defaults-file=${this.defaultsFile}`], { stdio: ["ignore", log, log] }),
    );
    this.process = child;
    let exited: string | undefined;
    child.once("exit", (code, signal) => {
      exited = `${signal ?? code}`;
    });
    await waitFor(
      `MariaDB on port ${this.port} (${this.baseDir})`,
      async () => {
        if (exited !== undefined) {
          throw new Error(`mariadbd exited with ${exited} while starting: ${this.errorLogTail()}`);
        }
        if (!existsSync(this.socket)) return false;
        try {
          await this.query("SELECT 1");
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 120_000 },
    );
  }

  errorLogTail(): string {
    const file = path.join(this.baseDir, "error.log");
    return existsSync(file) ? readFileSync(file, "utf8").slice(-2000) : "(no error log)";
  }

  /** Runs SQL as root over the socket; returns the rows as arrays of strings (NULL as null). */
  async query(sql: string, database?: string): Promise<(string | null)[][]> {
    const args = [
      `--defaults-file=${this.defaultsFile}`,
      "-uroot",
      "--batch",
      "--skip-column-names",
      "--raw",
    ];
    if (database) args.push(`--database=${database}`);
    const { stdout } = await run("mariadb", args, { input: sql });
    return stdout
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => line.split("\t").map((field) => (field === "NULL" ? null : field)));
  }

  async scalar(sql: string): Promise<string | null> {
    const rows = await this.query(sql);
    return rows[0]?.[0] ?? null;
  }

  /** One value, logged in over the socket as `user` (its password in a 0600 option file, not argv). */
  async scalarAs({ user, password }: SqlUser, sql: string): Promise<string | null> {
    const file = path.join(this.baseDir, `client-${user}.cnf`);
    writeFileSync(file, `[client]\nuser=${user}\npassword="${password}"\nsocket=${this.socket}\n`, {
      mode: 0o600,
    });
    try {
      const { stdout } = await run("mariadb", [`--defaults-file=${file}`, "--batch", "--skip-column-names"], {
        input: sql,
      });
      return stdout.split("\n")[0] ?? null;
    } finally {
      rmSync(file, { force: true });
    }
  }

  async createUser({ user, password }: SqlUser, privileges: string, on = "*.*"): Promise<void> {
    const quoted = password.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
    await this.query(
      `CREATE OR REPLACE USER '${user}'@'localhost' IDENTIFIED BY '${quoted}';
       CREATE OR REPLACE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${quoted}';
       GRANT ${privileges} ON ${on} TO '${user}'@'localhost';
       GRANT ${privileges} ON ${on} TO '${user}'@'127.0.0.1';`,
    );
  }

  /**
   * Makes this server a GTID replica of `primary`, using a replication user on the primary. Both
   * were initialised empty, so replication starts at the primary's current GTID position (their
   * bootstrap transactions are the same and must not be applied twice).
   */
  async replicateFrom(primary: MariaDbServer, repl: SqlUser): Promise<void> {
    await this.query(
      `SET GLOBAL gtid_slave_pos = '${await primary.gtidBinlogPos()}';
       CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primary.port}, MASTER_USER='${repl.user}',
         MASTER_PASSWORD='${repl.password.replace(/'/g, "\\'")}', MASTER_USE_GTID=slave_pos;
       START SLAVE;`,
    );
  }

  /** Goes on replicating from the same source as another user (MariaDB: both threads restart). */
  async replicateAs(repl: SqlUser): Promise<void> {
    await this.query(
      `STOP SLAVE;
       CHANGE MASTER TO MASTER_USER='${repl.user}', MASTER_PASSWORD='${repl.password.replace(/'/g, "\\'")}';
       START SLAVE;`,
    );
  }

  async gtidBinlogPos(): Promise<string> {
    return (await this.scalar("SELECT @@gtid_binlog_pos")) ?? "";
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child) {
      // Started by someone else (the agent): shut it down over the socket if it runs.
      if (existsSync(this.socket)) {
        await run("mariadb-admin", [`--defaults-file=${this.defaultsFile}`, "-uroot", "shutdown"]).catch(
          () => {},
        );
      }
      return;
    }
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    await exited;
    clearTimeout(timer);
  }

  /** `kill -9`: the host is lost mid-write (what it had not flushed is gone with it). */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /** Stops the server and removes everything under its base directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
