import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { Engine } from "../engines/engine.js";
import { SqlClient } from "../sql-client.js";
import { StderrTail } from "../tool.js";

/**
 * Runs "$@" (the server) and stops it with SIGTERM when stdin reaches EOF; exits with the
 * server. Background jobs of a non-interactive shell read /dev/null, hence stdin kept on fd 3.
 */
const SERVER_WATCHDOG = [
  "exec 3<&0",
  '"$@" 3<&- </dev/null &',
  "server=$!",
  '(cat <&3 >/dev/null; kill -TERM "$server" 2>/dev/null) &',
  'wait "$server"',
].join("\n");

export interface PrivateServerOptions {
  /** Holds the option file, socket, pid file and error log. */
  readonly dir: string;
  readonly datadir: string;
  readonly serverId: number;
  /** A loopback TCP port; without one the server listens on its socket only. */
  readonly port?: number;
  /** More [mysqld] options. */
  readonly options?: readonly string[];
  /** Says what the server is for, in errors. */
  readonly role: string;
  /** Create a fresh datadir (without `options`), then call this before starting. */
  readonly initialize?: () => void;
  /** Called between start and first answer, so a long start does not miss heartbeats. */
  readonly heartbeat?: () => void;
}

export interface PrivateServer {
  readonly defaultsFile: string;
  readonly sql: SqlClient;
  readonly errorLog: string;
  stop(): Promise<void>;
}

/**
 * A throwaway server only this agent talks to: no accounts (skip-grant-tables), loopback or
 * socket only, its own pid file and socket. Used to serve binlogs to the applier and to check a
 * restore on a scratch datadir without touching the host's real server.
 */
export async function startPrivateServer(
  engine: Engine,
  options: PrivateServerOptions,
): Promise<PrivateServer> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const socket = path.join(options.dir, "server.sock");
  const errorLog = path.join(options.dir, "error.log");
  const defaultsFile = path.join(options.dir, "my.cnf");
  const optionFile = (extra: readonly string[]) =>
    [
      "[mysqld]",
      ...(os.userInfo().uid === 0 ? ["user=root"] : []),
      `datadir=${options.datadir}`,
      `socket=${socket}`,
      ...(options.port ? [`port=${options.port}`, "bind-address=127.0.0.1"] : ["skip-networking"]),
      `pid-file=${path.join(options.dir, "server.pid")}`,
      `log-error=${errorLog}`,
      "skip-grant-tables",
      "skip-name-resolve",
      engine.skipReplicaStart,
      `server-id=${options.serverId}`,
      ...extra,
      "[client]",
      `socket=${socket}`,
      "user=root",
      "",
    ].join("\n");
  if (options.initialize) {
    mkdirSync(options.datadir, { recursive: true });
    writeFileSync(defaultsFile, optionFile([]), { mode: 0o600 });
    await engine.initializeDatadir(defaultsFile).catch((error: Error) => {
      throw new RewindError(
        ErrorNames.replay,
        `could not create the ${options.role}'s datadir: ${error.message}`,
      );
    });
    options.initialize();
  }
  writeFileSync(defaultsFile, optionFile(options.options ?? []), { mode: 0o600 });
  const stderr = new StderrTail();
  // The server lives only as long as this agent: a watchdog shell stops it when the agent's end
  // of its stdin closes, which a SIGKILLed agent does too (no orphaned server, no held datadir).
  const server: ChildProcess = spawn(
    "sh",
    ["-c", SERVER_WATCHDOG, "sh", engine.tools.server, `--defaults-file=${defaultsFile}`],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  server.stdin!.on("error", () => {});
  server.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
  // skip-grant-tables: root over the socket with any password.
  const sql = new SqlClient({ socket }, { username: "root", password: "" });
  const stop = async () => {
    await sql.close();
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, "exit");
    server.stdin!.end();
    await exited;
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (server.exitCode !== null) {
      throw new RewindError(
        ErrorNames.replay,
        `the ${options.role} exited while starting; see ${errorLog}`,
        stderr.toString(),
      );
    }
    try {
      await sql.connect();
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new RewindError(
          ErrorNames.replay,
          `the ${options.role} did not start within 120 s; see ${errorLog}`,
        );
      }
      options.heartbeat?.();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { defaultsFile, sql, errorLog, stop };
}
