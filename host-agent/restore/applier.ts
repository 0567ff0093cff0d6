import { copyFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { Engine } from "../engines/engine.js";
import { log } from "../log.js";
import type { SqlClient } from "../sql-client.js";
import type { ReplayRange } from "./binlogs.js";
import { freeLoopbackPort, type PrivateServer, startPrivateServer } from "./private-server.js";

/**
 * Replays through the restored server's own replication applier, with parallel workers: a
 * throwaway source server on the loopback interface serves the downloaded binlogs, and the
 * restored server replicates from it by GTID until exactly the target position. Much faster than
 * `mariadb-binlog | mariadb`, which turns every row event back into SQL text.
 */
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
  const basename = range.files[0]!.replace(/\.\d+$/, "");
  let source: PrivateServer | undefined;
  try {
    const port = await freeLoopbackPort();
    source = await startPrivateServer(engine, {
      dir,
      datadir,
      port,
      serverId: 4_000_000_000,
      role: "local binlog source",
      // It only serves binlogs to one local replica: no data of its own.
      options: [
        "innodb_buffer_pool_size=32M",
        `log-bin=${path.join(datadir, basename)}`,
        "binlog_format=ROW",
      ],
      initialize: () => {
        for (const file of range.files)
          copyFileSync(path.join(options.binlogDir, file), path.join(datadir, file));
        writeFileSync(
          path.join(datadir, `${basename}.index`),
          `${range.files.map((file) => path.join(datadir, file)).join("\n")}\n`,
        );
      },
      heartbeat: options.heartbeat,
    });
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
    await source?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
