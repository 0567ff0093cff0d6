import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { ApplierSource, Engine } from "../engines/engine.js";
import { log } from "../log.js";
import { freeLoopbackPort } from "../net.js";
import type { SqlClient } from "../sql-client.js";
import { type BinlogFilterResult, filterBinlogFile } from "./binlog-filter.js";
import type { ReplayRun } from "./binlogs.js";
import type { ReplicationFilter } from "./partial.js";
import { type PrivateServer, startPrivateServer } from "./private-server.js";

interface ApplierReplay {
  readonly engine: Engine;
  readonly range: ReplayRun;
  readonly binlogDir: string;
  readonly workDir: string;
  readonly parallelWorkers: number;
  readonly heartbeat: () => void;
  readonly timeoutSeconds: number;
  /** The source binlog (its base name) and position the applier has executed up to. */
  readonly onExecuted?: (file: string, position: number) => void;
  /** Replay only these tables' transactions (a partial table restore). */
  readonly filter?: ReplicationFilter;
}

/**
 * MariaDB: replays through the restored server's own replication applier, with parallel workers:
 * a throwaway source server on the loopback interface serves the downloaded binlogs, and the
 * restored server replicates from it by GTID until exactly the target position. Much faster than
 * `mariadb-binlog | mariadb`, which turns every row event back into SQL text.
 */
export async function replayFromLocalServer(
  options: ApplierReplay & { readonly sql: SqlClient },
): Promise<{ skippedTransactions: number; replayedTransactions: number } | undefined> {
  const { engine, range, sql } = options;
  if (range.files.length === 0) return undefined;
  const dir = path.join(options.workDir, "binlog-source");
  const datadir = path.join(dir, "data");
  const basename = path.basename(range.files[0]!).replace(/\.\d+$/, "");
  let source: PrivateServer | undefined;
  // A partial restore's binlogs lose the transactions the filter would skip (binlog-filter.ts);
  // positions the applier reports are mapped back to the downloaded files' for progress.
  const filtered = new Map<string, BinlogFilterResult>();
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
        for (const [index, file] of range.files.entries()) {
          const from = path.join(options.binlogDir, file);
          const to = path.join(datadir, path.basename(file));
          if (!options.filter) {
            copyFileSync(from, to);
            continue;
          }
          filtered.set(
            path.basename(file),
            filterBinlogFile(from, to, {
              filter: options.filter,
              startPosition: index === 0 ? range.startPosition : 0,
              // Where START SLAVE UNTIL stops: those transactions reach the applier.
              keep: new Set(range.untilPosition.split(",").map((gtid) => gtid.trim())),
            }),
          );
        }
        if (options.filter) {
          const results = [...filtered.values()];
          log("info", "left out the transactions on other tables before replay", {
            skipped: results.reduce((sum, result) => sum + result.droppedTransactions, 0),
            toReplay: results.reduce((sum, result) => sum + result.keptTransactions, 0),
            skippedBytes: results.reduce((sum, result) => sum + result.droppedBytes, 0),
          });
        }
        writeFileSync(
          path.join(datadir, `${basename}.index`),
          `${range.files.map((file) => path.join(datadir, path.basename(file))).join("\n")}\n`,
        );
      },
      heartbeat: options.heartbeat,
    });
    // A replica skips events that carry its own server_id: restored onto the host that wrote the
    // binlogs (a primary restored in place), the applier would apply none of its transactions.
    // The restored server takes another id while it replays, then its own again.
    const { id } = await sql.row("SELECT @@server_id AS id");
    await sql.rows(`SET GLOBAL server_id = ${REPLAY_SERVER_ID}`);
    try {
      await applyUntil(
        {
          ...options,
          onExecuted: (file, position) =>
            options.onExecuted?.(file, filtered.get(file)?.originalPosition(position) ?? position),
        },
        sql,
        { kind: "local-server", port },
      );
    } finally {
      await sql.rows(`SET GLOBAL server_id = ${Number(id)}`);
    }
  } finally {
    await source?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (!options.filter) return undefined;
  const results = [...filtered.values()];
  return {
    skippedTransactions: results.reduce((sum, result) => sum + result.droppedTransactions, 0),
    replayedTransactions: results.reduce((sum, result) => sum + result.keptTransactions, 0),
  };
}

/** The restored server's id while its applier replays (no host's, no private server's). */
const REPLAY_SERVER_ID = 4_000_000_003;

/** The relay log base name the downloaded binlogs are installed under. */
export const RELAY_LOG_BASENAME = "rewind-relay";

/**
 * Copies the downloaded binlogs into `relayDir` as relay logs, in order, with their index file.
 * Returns the options a server needs to read them as its relay log.
 */
export function installRelayLogs(range: ReplayRun, binlogDir: string, relayDir: string): string[] {
  mkdirSync(relayDir, { recursive: true, mode: 0o700 });
  const relayFiles = range.files.map((file, index) => {
    const relay = path.join(relayDir, `${RELAY_LOG_BASENAME}.${String(index + 1).padStart(6, "0")}`);
    copyFileSync(path.join(binlogDir, file), relay);
    return relay;
  });
  const index = path.join(relayDir, `${RELAY_LOG_BASENAME}.index`);
  writeFileSync(index, `${relayFiles.join("\n")}\n`, { mode: 0o600 });
  return [
    `relay-log=${path.join(relayDir, RELAY_LOG_BASENAME)}`,
    `relay-log-index=${index}`,
    // The relay logs are our copies: keep them until replay is checked, never re-fetch from a source.
    "relay-log-purge=OFF",
    "relay-log-recovery=OFF",
  ];
}

/**
 * MySQL, the relay-log method: a private server on the restored datadir (socket only, not the
 * host's server) reads the downloaded binlogs as its relay logs, and its SQL thread applies them
 * with parallel workers from the backup's exact position until the target GTIDs. It writes no
 * binlog of its own (skip-log-bin); the replayed GTIDs land in mysql.gtid_executed. The host's
 * server is started on the datadir afterwards.
 */
export async function replayFromRelayLogs(
  options: ApplierReplay & { readonly datadir: string },
): Promise<void> {
  const { engine, range } = options;
  if (range.files.length === 0) return;
  const dir = path.join(options.workDir, "relay-replay");
  let server: PrivateServer | undefined;
  try {
    const relayOptions = installRelayLogs(range, options.binlogDir, path.join(dir, "relay"));
    server = await startPrivateServer(engine, {
      dir,
      datadir: options.datadir,
      // Not the binlogs' own server id, or the SQL thread would skip their events as its own.
      serverId: 4_000_000_002,
      role: "relay-log replay server",
      options: [...relayOptions, "skip-log-bin"],
      heartbeat: options.heartbeat,
    });
    await applyUntil(options, server.sql, {
      kind: "relay-log",
      file: `${RELAY_LOG_BASENAME}.000001`,
      position: range.startPosition,
    });
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts the applier on `source` and waits until it stops at the target, or fails. */
async function applyUntil(options: ApplierReplay, sql: SqlClient, source: ApplierSource): Promise<void> {
  const { engine, range } = options;
  log("info", "replaying through the replication applier", {
    files: range.files,
    source: source.kind,
    until: range.untilPosition,
    workers: options.parallelWorkers,
  });
  try {
    await sql.rows(
      engine.replicateUntilSql({
        source,
        until: range.untilPosition,
        parallelWorkers: options.parallelWorkers,
        ...(options.filter ? { filter: options.filter } : {}),
      }),
    );
    const deadline = Date.now() + options.timeoutSeconds * 1000;
    for (;;) {
      const state = await engine.readApplier(sql);
      if (state.error) {
        throw new RewindError(
          ErrorNames.replay,
          `the replication applier stopped with an error: ${state.error}`,
        );
      }
      if (state.executed) options.onExecuted?.(path.basename(state.executed.file), state.executed.position);
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
  }
}
