import { rmSync } from "node:fs";
import path from "node:path";
import { binlogSequence } from "../../core/binlog/manifest.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { readShippedTail } from "../../core/store/binlog-index.js";
import { chunkOnlyFiles, chunkOnlySeconds, chunkOnlyState } from "../binlog/chunk-only.js";
import { readHint, shipClosedFiles } from "../binlog/closed-files.js";
import { readStreamStatus, STREAM_LOCK } from "../binlog/stream-status.js";
import { s3Client } from "../clients.js";
import { type AgentContext, asBackupUser, readBinloggingServer } from "../context.js";
import { dataKeyring } from "../encryption.js";
import { claimHistory } from "../history.js";
import { acquireLock, liveHolder } from "../lock.js";
import { log } from "../log.js";

export interface BinlogPushResult {
  readonly source: string;
  readonly shipped: string[];
  readonly alreadyShipped: number;
  /** The file the server is writing; it is shipped once it is closed (`--flush` closes it now). */
  readonly active: string | null;
  readonly lastShippedEventTime: string | null;
  /**
   * How far the cluster's latest restorable point is behind now, as this host ships (the
   * RestorableLagSeconds metric); null from a host that does not ship (a replica).
   */
  readonly lagSeconds: number | null;
  /** The newest point a restore can reach through this host's shipping. */
  readonly latestRestorableTime?: string | null;
  /** Whether binlog-stream runs on this host; the watchdog ships nothing while it does. */
  readonly streamer?: "running" | "stopped";
  readonly role?: "primary" | "replica" | "read-only";
  readonly busy?: true;
  /** The history this host ships on (core/history). */
  readonly history?: string | null;
  /**
   * 1 when this host ships as the primary of a history that is not the cluster's current one
   * (two hosts act as primary: the TwoPrimaries alarm), with the reason; its lag is not reported.
   */
  readonly historyConflict?: 1;
  readonly conflict?: string;
  /**
   * From the shipping host: closed files not yet shipped whole and indexed (held only as
   * chunks), and how long since the oldest was closed (0 when none): the ChunkOnlyBinlogSeconds
   * metric, whose alarm fires after an hour. Null from a host that does not ship.
   */
  readonly chunkOnlyFiles?: number;
  readonly chunkOnlySeconds?: number | null;
  /** Why the last try to ship or index them failed. */
  readonly closedError?: string;
}

const _iso = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());

/**
 * `rewind-agent binlog-push [--flush]`: uploads every closed binlog that S3 does not have yet,
 * each followed by its manifest. Safe to run every minute: overlapping runs wait on nothing (the
 * second reports busy) and S3, not a local cache, says what is shipped.
 */
export async function binlogPush(context: AgentContext, flush: boolean): Promise<BinlogPushResult> {
  const { config, engine, location } = context;
  // The watchdog: while binlog-stream runs it ships, and this run only reports its health.
  if (!flush && liveHolder(config.stateDir, STREAM_LOCK)) return streamerHealth(config.stateDir);
  let release: () => void;
  try {
    release = acquireLock(config.stateDir, "binlog-push.lock", "binlog-push");
  } catch (error) {
    if (error instanceof RewindError && error.name === ErrorNames.busy) {
      log("info", "another binlog-push is running; this run has nothing to do", {});
      return {
        source: "",
        shipped: [],
        alreadyShipped: 0,
        active: null,
        lastShippedEventTime: null,
        lagSeconds: null,
        busy: true,
      };
    }
    throw error;
  }
  try {
    return await asBackupUser(context, async (_defaultsFile, sql) => {
      const { identity, role } = await readBinloggingServer(engine, sql, "there is nothing to ship");
      if (role !== "primary" && config.stream.shipFrom === "primary" && !flush) {
        // Only the primary ships (stream.shipFrom); a replica's binlogs hold the same transactions.
        return {
          source: engine.binlogSource(identity, config.host),
          shipped: [],
          alreadyShipped: 0,
          active: null,
          lastShippedEventTime: null,
          lagSeconds: null,
          streamer: "stopped",
          role,
        };
      }
      log("warn", "binlog-stream is not running on this host: shipping closed binlogs only", { role });
      const client = s3Client(config);
      const source = engine.binlogSource(identity, config.host);
      // As the streamer does: the history this primary writes is in S3 before it ships.
      const claimed =
        role === "primary" ? await claimHistory(context, client, sql, identity, source) : undefined;
      if (flush) await sql.rows("FLUSH BINARY LOGS");
      const { basename } = await sql.row("SELECT @@log_bin_basename AS basename");
      const files = (await sql.rows("SHOW BINARY LOGS")).map((row) => row.Log_name!);
      // S3 says what is shipped; its index says it in a few requests, however long the history,
      // and in one while the previous push's hint holds (its file still on this server).
      const hintFile = path.join(config.stateDir, "binlog-tail", `${source}.json`);
      const hint = readHint(hintFile);
      const tail = await readShippedTail(
        client,
        config.bucket,
        location,
        source,
        hint && files.includes(hint.lastShipped.file) ? hint : undefined,
      );
      rmSync(hintFile, { force: true });
      const lastShippedSequence = tail.lastShipped ? binlogSequence(tail.lastShipped.file) : -1;
      const { keyring, keyId } = dataKeyring(config);
      const closed = files.slice(0, -1);
      const {
        shipped: shippedManifests,
        lastEventTime,
        indexed,
        indexError,
      } = await shipClosedFiles(context, {
        client,
        keyring,
        keyId,
        source,
        dir: path.dirname(basename!),
        closed,
        tail,
        hintFile,
      });
      const wholeThrough = indexed
        ? (shippedManifests.at(-1)?.file ?? tail.lastShipped?.file ?? null)
        : (tail.lastIndexed?.file ?? null);
      const chunkOnly = chunkOnlyState(path.dirname(basename!), chunkOnlyFiles(closed, wholeThrough));
      return {
        source,
        shipped: shippedManifests.map((manifest) => manifest.file),
        alreadyShipped: closed.filter((file) => binlogSequence(file) <= lastShippedSequence).length,
        active: files.at(-1) ?? null,
        lastShippedEventTime: lastEventTime,
        // A host writing a history that is not the current one reports no lag: the dashboard's
        // restorable lag follows the current history.
        lagSeconds:
          lastEventTime === null || claimed?.conflict
            ? null
            : Math.round((Date.now() - Date.parse(lastEventTime)) / 1000),
        latestRestorableTime: lastEventTime,
        streamer: "stopped",
        role,
        chunkOnlyFiles: chunkOnly.files,
        chunkOnlySeconds: chunkOnlySeconds(chunkOnly),
        ...(chunkOnly.files > 0
          ? { closedError: indexError ?? tail.indexFailure ?? "the binlog index could not be updated" }
          : {}),
        history: claimed?.history ?? null,
        ...(claimed?.conflict ? { historyConflict: 1 as const, conflict: claimed.conflict } : {}),
      };
    });
  } finally {
    release();
  }
}

/**
 * The running streamer's health from its status file: the restorable lag is how long the oldest
 * transaction not yet in S3 has waited (none: how old the status is), or, when the status is
 * stale or missing (the streamer hangs), how long since it was written.
 */
function streamerHealth(stateDir: string): BinlogPushResult {
  const status = readStreamStatus(stateDir);
  const now = Date.now();
  const seconds = (since: string) => Math.max(0, Math.round((now - Date.parse(since)) / 1000));
  const shipping = status?.shipping ?? false;
  const lagSeconds = !status
    ? null
    : !shipping || status.conflict
      ? null
      : status.oldestPendingSince
        ? Math.max(seconds(status.oldestPendingSince), seconds(status.updatedAt))
        : seconds(status.updatedAt);
  if (status?.lastError) log("warn", "binlog-stream reports a failure", { error: status.lastError });
  const chunkOnly = { files: status?.chunkOnlyFiles ?? 0, since: status?.chunkOnlySince ?? null };
  return {
    source: status?.source ?? "",
    shipped: [],
    alreadyShipped: 0,
    active: status?.file ?? null,
    lastShippedEventTime: status?.lastShippedEventTime ?? null,
    lagSeconds,
    latestRestorableTime: lagSeconds === null ? null : new Date(now - lagSeconds * 1000).toISOString(),
    streamer: "running",
    role: status?.role ?? undefined,
    chunkOnlyFiles: chunkOnly.files,
    chunkOnlySeconds: shipping ? chunkOnlySeconds(chunkOnly, now) : null,
    ...(status?.closedError ? { closedError: status.closedError } : {}),
    history: status?.history ?? null,
    ...(status?.conflict ? { historyConflict: 1 as const, conflict: status.conflict } : {}),
  };
}
