import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { NodeCachingMaterialsManager } from "@aws-crypto/client-node";
import { BINLOG_CHUNK_FORMAT_VERSION } from "../../core/binlog/chunk.js";
import { BinlogReader } from "../../core/binlog/parse.js";
import { fastCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { type GtidSet, gtidModel } from "../../core/gtid/index.js";
import { currentHistory } from "../../core/history.js";
import { binlogChunkKey, historiesPrefix } from "../../core/layout.js";
import { listChunks } from "../../core/store/binlog-chunks.js";
import { readShippedTail } from "../../core/store/binlog-index.js";
import { readHistoryTree } from "../../core/store/histories.js";
import { listKeys } from "../../core/store/objects.js";
import { formatMicros } from "../../core/time.js";
import { type AgentContext, readBinloggingServer } from "../context.js";
import { cachedDataKeys, encryptionRecord } from "../encryption.js";
import { claimHistory, conflictOf } from "../history.js";
import { log } from "../log.js";
import type { SqlClient } from "../sql-client.js";
import { AGENT_VERSION } from "../version.js";
import { storeChunk } from "./chunk-object.js";
import { chunkOnlyFiles, chunkOnlyState } from "./chunk-only.js";
import { readHint, type ShipTarget, shipClosedFiles } from "./closed-files.js";
import { STREAM_STATUS_FILE, type StreamStatus } from "./stream-status.js";

const MiB = 1024 * 1024;
/** How much of the binlog one poll reads at most, so a long backlog never blocks shipping. */
const READ_SLICE = 8 * MiB;

export interface StreamResult {
  readonly source: string | null;
  readonly chunks: number;
  readonly files: string[];
  readonly lastShippedGtid: string | null;
}

/** The file's state after one complete transaction: what a chunk ending there records. */
interface Point {
  readonly end: number;
  readonly added: GtidSet;
  readonly transactions: number;
  readonly firstGtid: string | null;
  readonly lastGtid: string | null;
  readonly gtid: string | null;
  readonly lastEventTime: number | null;
  readonly lastCommitMicros: number | null;
  /** When the streamer saw it complete in the file (ms): the lag clock starts here. */
  readonly seenAt: number;
}

const iso = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());

/**
 * The binlog the server is writing, followed from its first byte: the reader checks every event
 * and reports each complete transaction; what S3 already holds (chunks 0…next-1, up to
 * `shippedEnd`) is read again on resume but not shipped again.
 */
class ActiveFile {
  readonly reader: BinlogReader;
  private readonly fd: number;
  private readOffset = 0;
  /** Reused for every read, every poll: only what was read is copied. */
  private readonly slice = Buffer.allocUnsafe(READ_SLICE);
  /** Complete transactions past `shippedEnd`, in order. */
  pending: Point[] = [];
  latest: Point;
  /** When this streamer asked the server to rotate the file (stream.rotateMinutes / maxChunksPerFile). */
  rotationRequestedAt: number | null = null;

  constructor(
    readonly dir: string,
    readonly file: string,
    readonly previousFile: string | null,
    public shippedEnd: number,
    public nextChunk: number,
    engine: "mariadb" | "mysql",
  ) {
    this.fd = openSync(path.join(dir, file), "r");
    this.latest = {
      end: 0,
      added: gtidModel(engine).empty(),
      transactions: 0,
      firstGtid: null,
      lastGtid: null,
      gtid: null,
      lastEventTime: null,
      lastCommitMicros: null,
      seenAt: Date.now(),
    };
    this.reader = new BinlogReader({
      crc32: fastCrc32,
      onTransaction: (transaction) => {
        if (transaction.gtid === null) {
          throw new RewindError(
            ErrorNames.binlogInvalid,
            `${file} holds a transaction without a GTID at offset ${transaction.startPosition}: the server runs with gtid_mode OFF. Rewind restores by GTID; set gtid_mode=ON and enforce_gtid_consistency=ON, then take a new full backup`,
          );
        }
        const previous = this.latest;
        this.latest = {
          end: transaction.endPosition,
          added: previous.added.add(transaction.gtid),
          transactions: previous.transactions + 1,
          firstGtid: previous.firstGtid ?? transaction.gtid,
          lastGtid: transaction.gtid,
          gtid: transaction.gtid,
          lastEventTime: transaction.timestamp,
          lastCommitMicros: transaction.commitMicros ?? previous.lastCommitMicros,
          seenAt: Date.now(),
        };
        if (transaction.endPosition > this.shippedEnd) this.pending.push(this.latest);
      },
    });
  }

  /** Reads what the server appended since the last call (at most one slice); the bytes read. */
  readMore(): number {
    const read = readSync(this.fd, this.slice, 0, READ_SLICE, this.readOffset);
    if (read > 0) {
      this.readOffset += read;
      // A copy: the reader keeps an unfinished event's bytes until the rest arrives.
      this.reader.push(Buffer.from(this.slice.subarray(0, read)));
    }
    return read;
  }

  /** The server wrote its rotate (or stop) event: nothing more comes, and `rotatesTo` follows. */
  get closed(): boolean {
    return this.reader.snapshot().closed;
  }

  /** Every whole event read: the end of a closed file. */
  get consumed(): number {
    return this.reader.snapshot().size;
  }

  bytes(start: number, end: number): Buffer {
    const buffer = Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < buffer.length) {
      const read = readSync(this.fd, buffer, done, buffer.length - done, start + done);
      if (read === 0) throw new Error(`${this.file} is shorter than ${end} bytes`);
      done += read;
    }
    return buffer;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** What the streamer has done so far, kept up to date while it runs. */
export type StreamStats = { -readonly [K in keyof StreamResult]: StreamResult[K] };

export type Shipping = Pick<ShipTarget, "client" | "keyring" | "keyId">;

const CLOSED_RETRY_FIRST_MS = 5000;
const CLOSED_RETRY_MAX_MS = 60_000;

export class Streamer {
  private active?: ActiveFile;
  private target?: ShipTarget;
  private closing: Promise<void> = Promise.resolve();
  /** When closed files could not be shipped whole (or indexed): when to try again. */
  private closedRetryAt: number | null = null;
  private closedBackoffMs = CLOSED_RETRY_FIRST_MS;
  private roleCheckedAt = 0;
  private shipping = false;
  private role: StreamStatus["role"] = null;
  private statusAt = 0;
  private lastError: string | null = null;
  private lastChunkAt: string | null = null;
  private lastShippedEventTime: string | null = null;
  private history: string | null = null;
  private conflict: string | null = null;
  private historyCheckedAt = 0;
  private historyListing: string | null = null;
  /** Closed files not yet shipped whole and indexed, oldest first (core of the ChunkOnly report). */
  private chunkOnly: string[] = [];
  /** The newest file known to be shipped whole and indexed; undefined until S3 was read. */
  private wholeThrough: string | null | undefined;
  private closedError: string | null = null;
  /** Data keys for chunks, one per file (its encryption context) and hour. */
  private readonly chunkMaterials: NodeCachingMaterialsManager;

  constructor(
    private readonly context: AgentContext,
    private readonly sql: SqlClient,
    private readonly keys: Shipping,
    private readonly stats: StreamStats,
  ) {
    this.chunkMaterials = cachedDataKeys(keys.keyring);
  }

  async run(once: boolean): Promise<void> {
    const { config } = this.context;
    const signal = this.context.signal;
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        if (Date.now() - this.roleCheckedAt >= config.stream.roleCheckSeconds * 1000) await this.checkRole();
        if (
          this.history !== null &&
          Date.now() - this.historyCheckedAt >= config.stream.historyCheckSeconds * 1000
        )
          await this.checkHistory();
        if (!this.shipping) {
          this.writeStatus(false);
          if (once) return;
          await sleep(config.stream.pollMilliseconds, signal);
          continue;
        }
        this.active ??= await this.resume();
        if (this.closedRetryAt !== null && Date.now() >= this.closedRetryAt) await this.retryClosed();
        const behind = await this.step(once);
        backoff = 1000;
        this.lastError = null;
        this.writeStatus(false);
        if (once && !behind && this.active.pending.length === 0 && !this.active.closed) break;
        if (!behind) await sleep(config.stream.pollMilliseconds, signal);
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof RewindError && error.name === ErrorNames.binlogInvalid) throw error;
        log("warn", "binlog streaming failed; resuming from what S3 holds", {
          error: (error as Error).message,
          retryInSeconds: backoff / 1000,
        });
        this.reset();
        this.lastError = (error as Error).message;
        this.writeStatus(true);
        if (once) throw error;
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
    await this.closing;
    this.reset();
  }

  /** The status file, at most once a second unless `now`; written whole (temp file, rename). */
  private writeStatus(now: boolean): void {
    if (!now && Date.now() - this.statusAt < 1000) return;
    this.statusAt = Date.now();
    const oldest = this.active?.pending[0];
    const status: StreamStatus = {
      pid: process.pid,
      updatedAt: new Date().toISOString(),
      source: this.stats.source,
      shipping: this.shipping,
      role: this.role,
      file: this.active?.file ?? null,
      pendingTransactions: this.active?.pending.length ?? 0,
      oldestPendingSince: oldest ? new Date(oldest.seenAt).toISOString() : null,
      lastShippedGtid: this.stats.lastShippedGtid,
      lastShippedEventTime: this.lastShippedEventTime,
      lastChunkAt: this.lastChunkAt,
      lastError: this.lastError,
      history: this.history,
      conflict: this.conflict,
      ...this.chunkOnlyStatus(),
      closedError: this.closedError,
    };
    const file = path.join(this.context.config.stateDir, STREAM_STATUS_FILE);
    const temporary = `${file}.${process.pid}`;
    try {
      writeFileSync(temporary, JSON.stringify(status), { mode: 0o600 });
      renameSync(temporary, file);
    } catch (error) {
      log("warn", "could not write the streamer's status file", { error: (error as Error).message });
    }
  }

  private reset(): void {
    this.active?.close();
    this.active = undefined;
  }

  /**
   * Whether the history this primary writes is still the cluster's current one: a restore promoted
   * elsewhere (roll back and carry on) makes this host a second primary, which the watchdog
   * reports. One LIST of the histories; their records are read only when it changed.
   */
  private async checkHistory(): Promise<void> {
    const { config, location } = this.context;
    this.historyCheckedAt = Date.now();
    const { keys } = await listKeys(this.keys.client, config.bucket, historiesPrefix(location));
    const listing = keys.join("\n");
    if (listing === this.historyListing) return;
    const current = currentHistory(await readHistoryTree(this.keys.client, config.bucket, location));
    this.historyListing = listing;
    this.conflict =
      current === this.history
        ? null
        : (conflictOf(this.history!, current, this.stats.source ?? "").conflict ?? null);
  }

  /** Ships when this host is the primary (or every host ships); a change of role resumes from S3. */
  private async checkRole(): Promise<void> {
    const { config, engine } = this.context;
    this.roleCheckedAt = Date.now();
    const { identity, role } = await readBinloggingServer(engine, this.sql, "there is nothing to stream");
    const primary = role === "primary";
    const shipping = config.stream.shipFrom === "all" || primary;
    this.role = role;
    const source = engine.binlogSource(identity, config.host);
    if (primary && (!this.shipping || this.history === null)) {
      // Before anything ships as the primary: the history it writes is in S3 (core/history).
      const claimed = await claimHistory(this.context, this.keys.client, this.sql, identity, source);
      this.history = claimed.history;
      this.conflict = claimed.conflict ?? null;
      this.historyCheckedAt = Date.now();
      this.historyListing = null;
    } else if (!primary) {
      this.history = null;
      this.conflict = null;
    }
    if (shipping !== this.shipping) {
      log("info", shipping ? "streaming this host's binlog" : "not the primary: this host ships nothing", {
        role,
        shipFrom: config.stream.shipFrom,
      });
      this.reset();
    }
    this.shipping = shipping;
    this.stats.source = source;
    const { basename } = await this.sql.row("SELECT @@log_bin_basename AS basename");
    this.target = { ...this.keys, source, dir: path.dirname(basename!) };
  }

  /**
   * From what S3 holds: closed files it lacks are shipped whole (in the background), then the
   * active file is followed from its first byte, shipping from the end of its last chunk.
   */
  private async resume(): Promise<ActiveFile> {
    const { config, engine, location } = this.context;
    const target = this.target!;
    const files = (await this.sql.rows("SHOW BINARY LOGS")).map((row) => row.Log_name!);
    const activeFile = files.at(-1);
    if (!activeFile) throw new RewindError(ErrorNames.configInvalid, "the server lists no binary logs");
    await this.closing;
    this.closing = this.shipClosed(files.slice(0, -1));
    const tailFile = files.length > 1 ? files.at(-2) : undefined;
    // The chunks' byte ranges are in their keys: where shipping goes on needs the LIST alone.
    const chain =
      (await listChunks(this.keys.client, config.bucket, location, target.source, tailFile)).find(
        (entry) => entry.file === activeFile,
      )?.chain ?? [];
    const count = chain.length;
    const last = chain.at(-1);
    log("info", "following the active binlog", {
      file: activeFile,
      chunksInS3: count,
      resumeAt: last?.end ?? 0,
    });
    return new ActiveFile(
      target.dir,
      activeFile,
      files.length > 1 ? files.at(-2)! : null,
      last?.end ?? 0,
      count,
      engine.name,
    );
  }

  /** Closed-file shipping failed: tried again with backoff (5 s doubling to a minute) until it succeeds. */
  private retryClosedLater(): void {
    this.closedRetryAt = Date.now() + this.closedBackoffMs;
    this.closedBackoffMs = Math.min(this.closedBackoffMs * 2, CLOSED_RETRY_MAX_MS);
  }

  /** The closed files again, after a failure: their chunks hold them meanwhile. */
  private async retryClosed(): Promise<void> {
    this.closedRetryAt = null;
    await this.closing;
    const files = (await this.sql.rows("SHOW BINARY LOGS")).map((row) => row.Log_name!);
    this.closing = this.shipClosed(files.slice(0, -1));
  }

  private chunkOnlyStatus(): { chunkOnlyFiles: number; chunkOnlySince: string | null } {
    const state = this.target ? chunkOnlyState(this.target.dir, this.chunkOnly) : { files: 0, since: null };
    return { chunkOnlyFiles: state.files, chunkOnlySince: state.since };
  }

  /**
   * Ships the closed files S3 lacks, whole, with their manifests, and indexes them; until both
   * are done they count as chunk-only, and a failure of either is retried with backoff.
   */
  private shipClosed(closed: string[]): Promise<void> {
    const { config, location } = this.context;
    const target = this.target!;
    const hintFile = path.join(config.stateDir, "binlog-tail", `${target.source}.json`);
    // Until shown otherwise, a closed file newer than the last known to be whole is chunk-only.
    if (this.wholeThrough !== undefined) {
      this.chunkOnly = chunkOnlyFiles([...this.chunkOnly, ...closed], this.wholeThrough);
    }
    return (async () => {
      const hint = readHint(hintFile);
      const tail = await readShippedTail(
        this.keys.client,
        config.bucket,
        location,
        target.source,
        hint && closed.includes(hint.lastShipped.file) ? hint : undefined,
      );
      rmSync(hintFile, { force: true });
      this.wholeThrough = tail.lastIndexed?.file ?? null;
      this.chunkOnly = chunkOnlyFiles([...this.chunkOnly, ...closed], this.wholeThrough);
      if (tail.indexFailure) {
        log("warn", "shipped binlogs could not be indexed; shipping goes on and the next try indexes them", {
          unindexed: tail.unindexed,
          error: tail.indexFailure,
        });
      }
      const { shipped, indexed, indexError } = await shipClosedFiles(this.context, {
        ...target,
        closed,
        tail,
        hintFile,
      });
      this.stats.files.push(...shipped.map((manifest) => manifest.file));
      if (indexed) {
        this.wholeThrough = shipped.at(-1)?.file ?? tail.lastShipped?.file ?? null;
        this.chunkOnly = chunkOnlyFiles(this.chunkOnly, this.wholeThrough);
      }
      if (this.chunkOnly.length === 0) {
        this.closedBackoffMs = CLOSED_RETRY_FIRST_MS;
        this.closedError = null;
      } else {
        // Shipped but not indexed: tried again, as a failed shipment is.
        this.closedError = indexError ?? tail.indexFailure ?? "the binlog index could not be updated";
        this.retryClosedLater();
      }
      this.writeStatus(true);
    })().catch((error: Error) => {
      log("warn", "could not ship a closed binlog; retrying", {
        error: error.message,
        name: error.name,
        cause: error.cause === undefined ? undefined : String(error.cause),
        retryInSeconds: this.closedBackoffMs / 1000,
      });
      this.closedError = `${error.name}: ${error.message}`;
      this.retryClosedLater();
      this.writeStatus(true);
    });
  }

  /**
   * Reads what is new and ships a chunk when the oldest unshipped transaction has waited long
   * enough to batch, leaving time for the upload within the interval; follows a rotation.
   * Returns whether there is more to read right away.
   */
  private async step(once: boolean): Promise<boolean> {
    const active = this.active!;
    const { config } = this.context;
    const read = active.readMore();
    // A transaction waits at most a second short of the interval before its chunk goes: one PUT
    // batches as much as the RPO allows (upload and poll fit in the second left).
    const batchMs = Math.max(0, config.stream.intervalSeconds * 1000 - 1000);
    const oldest = active.pending[0];
    if (active.closed) {
      // Everything up to the rotate event, then the next file.
      while (active.shippedEnd < active.consumed) await this.shipChunk(active, true);
      const next = active.reader.snapshot().rotatesTo;
      active.close();
      this.active = undefined;
      if (next) {
        await this.closing;
        // With the file before it, so its manifest names the file the server wrote before it.
        this.closing = this.shipClosed(
          active.previousFile ? [active.previousFile, active.file] : [active.file],
        );
        this.active = new ActiveFile(active.dir, next, active.file, 0, 0, this.context.engine.name);
      }
      return true;
    }
    if (oldest && (once || Date.now() - oldest.seenAt >= batchMs || read === READ_SLICE)) {
      await this.shipChunk(active, false);
    }
    await this.rotateIfDue(active);
    return read === READ_SLICE;
  }

  /**
   * Bounds the work per file: a file open for stream.rotateMinutes (from its first event) or with
   * stream.maxChunksPerFile chunks is rotated by the primary; its rotate event then closes it as
   * max_binlog_size would: the last transactions go in its final chunk, and it is shipped whole.
   */
  private async rotateIfDue(active: ActiveFile): Promise<void> {
    const { stream } = this.context.config;
    if (this.role !== "primary" || active.nextChunk === 0) return;
    const retryAfterMs = 30_000;
    if (active.rotationRequestedAt !== null && Date.now() - active.rotationRequestedAt < retryAfterMs) return;
    const opened = active.reader.snapshot().firstEventTime;
    const ageMinutes = opened === null ? 0 : (Date.now() / 1000 - opened) / 60;
    if (ageMinutes < stream.rotateMinutes && active.nextChunk < stream.maxChunksPerFile) return;
    active.rotationRequestedAt = Date.now();
    log("info", "rotating the binlog to bound the work per file", {
      file: active.file,
      chunks: active.nextChunk,
      openMinutes: Math.round(ageMinutes),
    });
    await this.sql.rows("FLUSH BINARY LOGS");
  }

  /** One chunk: from where S3's chunks end to the end of a complete transaction (the file's end once closed). */
  private async shipChunk(active: ActiveFile, closing: boolean): Promise<void> {
    const { config, engine, location } = this.context;
    const target = this.target!;
    const limit = active.shippedEnd + config.stream.maxChunkMiB * MiB;
    const fits = active.pending.filter((point) => point.end <= limit);
    const through = fits.at(-1) ?? active.pending[0];
    const end = through ? through.end : active.consumed;
    const point = through ?? active.latest;
    const final = closing && active.pending.every((pending) => pending.end <= end);
    const chunkEnd = final ? active.consumed : end;
    const chunk = active.nextChunk;
    const bytes = active.bytes(active.shippedEnd, chunkEnd);
    const summary = active.reader.snapshot();
    // The file's context, the same for every chunk of it: one cached data key serves them all.
    const encryptionContext = { cluster: config.cluster, source: target.source, file: active.file };
    const inChunk = active.pending.filter((pending) => pending.end <= chunkEnd);
    const manifest = await storeChunk({
      client: this.keys.client,
      bucket: config.bucket,
      key: binlogChunkKey(location, target.source, active.file, active.shippedEnd, chunkEnd),
      materials: this.chunkMaterials,
      compressionLevel: config.backup.compressionLevel,
      bytes,
      facts: {
        formatVersion: BINLOG_CHUNK_FORMAT_VERSION,
        cluster: config.cluster,
        engine: engine.name,
        source: target.source,
        file: active.file,
        chunk,
        previousFile: active.previousFile,
        serverVersion: summary.serverVersion,
        startOffset: active.shippedEnd,
        endOffset: chunkEnd,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        fileGtidsBefore: gtidModel(engine.name).parseSet(summary.gtidsBefore).toString(),
        gtidsAdded: point.added.toString(),
        firstGtid: point.firstGtid,
        lastGtid: point.lastGtid,
        chunkFirstGtid: inChunk[0]?.gtid ?? null,
        firstEventTime: iso(summary.firstEventTime),
        lastEventTime: iso(final ? summary.lastEventTime : point.lastEventTime),
        lastCommitTime: point.lastCommitMicros === null ? null : formatMicros(point.lastCommitMicros),
        transactions: point.transactions,
        chunkTransactions: inChunk.length,
        encryption: encryptionRecord(this.keys.keyId, encryptionContext),
        shippedAt: new Date().toISOString(),
        agentVersion: AGENT_VERSION,
      },
    });
    active.shippedEnd = chunkEnd;
    active.nextChunk = chunk + 1;
    active.pending = active.pending.filter((pending) => pending.end > chunkEnd);
    this.stats.chunks++;
    this.stats.lastShippedGtid = point.lastGtid ?? this.stats.lastShippedGtid;
    this.lastShippedEventTime = manifest.lastEventTime ?? this.lastShippedEventTime;
    this.lastChunkAt = manifest.shippedAt;
    this.writeStatus(true);
    const lagMs = inChunk[0] ? Date.now() - inChunk[0].seenAt : 0;
    log("info", "binlog chunk shipped", {
      file: active.file,
      chunk,
      transactions: inChunk.length,
      lastGtid: point.lastGtid,
      bytes: bytes.length,
      oldestWaitedMs: lagMs,
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
