import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { Engine } from "../engines/engine.js";
import { log } from "../log.js";
import type { SqlClient } from "../sql-client.js";
import { runTool, StderrTail } from "../tool.js";
import type { ReplayRange } from "./binlogs.js";

/**
 * Replays through the restored server's own replication applier, with parallel workers: a
 * throwaway source server on the loopback interface serves the downloaded binlogs, and the
 * restored server replicates from it by GTID until exactly the target position. Much faster than
 * `mariadb-binlog | mariadb`, which turns every row event back into SQL text.
 */
async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

export async function replayThroughApplier(options: {
  readonly engine: Engine;
  readonly range: ReplayRange;
  readonly binlogDir: string;
  readonly workDir: string;
  readonly sql: SqlClient;
  readonly parallelWorkers: number;
  readonly heartbeat: () => void;
  readonly timeoutSeconds: number;
}): Promise<void> {
  const { engine, range, sql } = options;
  if (range.files.length === 0) return;
  const dir = path.join(options.workDir, "binlog-source");
  const datadir = path.join(dir, "data");
  mkdirSync(datadir, { recursive: true });
  const port = await freeLoopbackPort();
  const defaultsFile = path.join(dir, "my.cnf");
  const basename = range.files[0]!.replace(/\.\d+$/, "");
  const config = (withBinlog: boolean) =>
    [
      "[mysqld]",
      ...(os.userInfo().uid === 0 ? ["user=root"] : []),
      `datadir=${datadir}`,
      `socket=${path.join(dir, "source.sock")}`,
      `port=${port}`,
      "bind-address=127.0.0.1",
      `pid-file=${path.join(dir, "source.pid")}`,
      `log-error=${path.join(dir, "error.log")}`,
      // It only serves binlogs to one local replica: no accounts, no data of its own.
      "skip-grant-tables",
      "skip-name-resolve",
      "server-id=4000000000",
      "innodb_buffer_pool_size=32M",
      "innodb_log_file_size=16M",
      ...(withBinlog ? [`log-bin=${path.join(datadir, basename)}`, "binlog_format=ROW"] : []),
      "[client]",
      `socket=${path.join(dir, "source.sock")}`,
      "",
    ].join("\n");
  writeFileSync(defaultsFile, config(false));
  let source: ChildProcess | undefined;
  const stderr = new StderrTail();
  try {
    await engine.initializeDatadir(defaultsFile);
    for (const file of range.files)
      copyFileSync(path.join(options.binlogDir, file), path.join(datadir, file));
    writeFileSync(
      path.join(datadir, `${basename}.index`),
      `${range.files.map((file) => path.join(datadir, file)).join("\n")}\n`,
    );
    writeFileSync(defaultsFile, config(true));
    source = spawn(engine.tools.server, [`--defaults-file=${defaultsFile}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    source.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
    await waitForSource(engine, defaultsFile, source, dir);
    log("info", "replaying through the replication applier", {
      files: range.files,
      until: range.untilPosition,
      workers: options.parallelWorkers,
    });
    await engine.replicateUntil(sql, {
      port,
      until: range.untilPosition,
      parallelWorkers: options.parallelWorkers,
    });
    const deadline = Date.now() + options.timeoutSeconds * 1000;
    for (;;) {
      const state = await engine.readApplier(sql);
      if (state.error) {
        throw new RewindError(
          ErrorNames.replay,
          `the replication applier stopped with an error: ${state.error}`,
        );
      }
      if (!state.running) break;
      if (Date.now() > deadline) {
        throw new RewindError(
          ErrorNames.replay,
          `binlog replay did not finish within ${options.timeoutSeconds} s`,
        );
      }
      options.heartbeat();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await engine
      .removeApplier(sql)
      .catch((error: Error) => log("warn", "could not remove the replay channel", { error: error.message }));
    if (source && source.exitCode === null) {
      const exited = once(source, "exit");
      source.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitForSource(
  engine: Engine,
  defaultsFile: string,
  source: ChildProcess,
  dir: string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (source.exitCode !== null) {
      throw new RewindError(
        ErrorNames.replay,
        `the local binlog source exited while starting; see ${dir}/error.log`,
      );
    }
    try {
      await runTool(engine.tools.admin, [`--defaults-file=${defaultsFile}`, "ping"]);
      return;
    } catch {
      if (Date.now() > deadline)
        throw new RewindError(ErrorNames.replay, "the local binlog source did not start within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
