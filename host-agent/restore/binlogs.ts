import { createHash } from "node:crypto";
import { appendFileSync, createReadStream, createWriteStream, mkdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { isChunked } from "../../core/binlog/chunk.js";
import { BinlogReader, type BinlogTransaction } from "../../core/binlog/parse.js";
import { fastCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { gtidModel } from "../../core/gtid/index.js";
import { FILE_START } from "../../core/restorable-window.js";
import { type RestorePlan, withinTime } from "../../core/restore-plan.js";
import type { RestoreBinlog } from "../../core/store/plan-from-store.js";
import { requireMicros } from "../../core/time.js";
import { fetchChunk } from "../binlog/chunk-object.js";
import { cachedDataKeys } from "../encryption.js";
import type { Engine } from "../engines/engine.js";
import { PipelineSupervisor } from "../pipeline.js";
import { startTool } from "../tool.js";
import { decodeStream } from "./decode.js";

/** Where a planned binlog is downloaded, relative to the download dir: sources may reuse file names. */
export function downloadedName(binlog: { readonly source: string; readonly file: string }): string {
  return path.join(binlog.source, binlog.file);
}

/**
 * Downloads the plan's binlogs into `dir` (`<source>/<file>`), each verified part by part,
 * decrypted, decompressed and checked against the SHA-256 of the bytes the server wrote; a file
 * still being written is its chunks, each checked, concatenated. Runs before any datadir is
 * touched.
 */
export async function fetchBinlogs(
  plan: RestorePlan<RestoreBinlog>,
  dir: string,
  options: {
    client: S3Client;
    bucket: string;
    keyring: KeyringNode;
    concurrency: number;
    /** The binlog bytes written so far (of binlogBytes(plan)). */
    onBytes?: (bytes: number) => void;
  },
): Promise<void> {
  // Chunks share their file's data key: it is unwrapped once per file, not once per chunk.
  const materials = cachedDataKeys(options.keyring);
  let fetched = 0;
  const count = (bytes: number) => {
    fetched += bytes;
    options.onBytes?.(fetched);
  };
  for (const { manifest } of plan.binlogs) {
    const file = path.join(dir, downloadedName(manifest));
    mkdirSync(path.dirname(file), { recursive: true });
    rmSync(file, { force: true });
    if (isChunked(manifest)) {
      const expectedContext = { cluster: plan.backup.cluster, source: manifest.source, file: manifest.file };
      for (const [index, chunk] of manifest.chunkObjects.entries()) {
        const label = `chunk ${index} of binlog ${manifest.source}/${manifest.file}`;
        if (chunk.start !== (manifest.chunkObjects[index - 1]?.end ?? 0)) {
          throw new RewindError(
            ErrorNames.verify,
            `${label} does not follow the chunk before it; nothing was restored`,
          );
        }
        const { bytes } = await fetchChunk({ ...options, chunk, index, materials, expectedContext, label });
        appendFileSync(file, bytes);
        count(bytes.length);
      }
      continue;
    }
    const label = `binlog ${manifest.source}/${manifest.file}`;
    const hash = createHash("sha256");
    const sink = createWriteStream(file, { flags: "a" });
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        count(chunk.length);
        callback(null, chunk);
      },
    });
    const written = pipeline(hashing, sink);
    await decodeStream(
      {
        label,
        segments: [manifest.stored],
        storedBytes: manifest.stored.size,
        storedSha256: manifest.storedSha256,
        encryptionContext: manifest.encryption.context,
      },
      { ...options, sink: hashing, sinkDone: written },
    );
    if (hash.digest("hex") !== manifest.sha256) {
      throw new RewindError(
        ErrorNames.verify,
        `${label} does not match the SHA-256 of the bytes the server wrote; it is damaged and nothing was restored`,
      );
    }
  }
}

/** Where one pass's replay is, in its files' byte coordinates, for progress. */
export class ReplayMeter {
  private readonly spans: { run: number; file: string; start: number; end: number }[];
  readonly total: number;

  constructor(
    range: ReplayRange,
    dir: string,
    sizeOf: (file: string) => number = (file) => statSync(path.join(dir, file)).size,
  ) {
    // A pass reads its first file from its start position, the others from their first event.
    this.spans = range.runs.flatMap((run, r) =>
      run.files.map((file, i) => ({
        run: r,
        file,
        start: i === 0 ? run.startPosition : 4,
        end: i === run.files.length - 1 ? run.stopPosition : sizeOf(file),
      })),
    );
    this.total = this.spans.reduce((sum, span) => sum + Math.max(span.end - span.start, 0), 0);
  }

  /** Bytes replayed once pass `run` has executed up to `position` of its `fileIndex`-th file. */
  doneAt(run: number, fileIndex: number, position: number): number {
    let done = 0;
    let seen = 0;
    for (const span of this.spans) {
      const whole = Math.max(span.end - span.start, 0);
      if (span.run < run) done += whole;
      else if (span.run === run) {
        if (seen < fileIndex) done += whole;
        else if (seen === fileIndex) done += Math.min(Math.max(position - span.start, 0), whole);
        seen += 1;
      }
    }
    return done;
  }

  /** As doneAt, the file named by its base name (what an applier reports). */
  doneAtFile(run: number, file: string, position: number): number | undefined {
    const index = this.spans
      .filter((span) => span.run === run)
      .findIndex((span) => path.basename(span.file) === file);
    return index === -1 ? undefined : this.doneAt(run, index, position);
  }
}

/**
 * Follows the decoder's text on its way to the client: each event's `# at N` and each file's
 * format description line (`Start: binlog v 4`), so replay's position is known without asking
 * the server (the client's session does not binlog). Only whole lines are read; the head of a
 * very long line (a row event's BINLOG statement) is kept, the rest skipped.
 */
export class DecodedPositions {
  private file = -1;
  private position = 0;
  private carry = "";
  private skipping = false;

  /** The pass's file index (0 = its first) and the offset of the last event begun there. */
  get current(): { file: number; position: number } | undefined {
    return this.file < 0 ? undefined : { file: this.file, position: this.position };
  }

  push(chunk: Buffer): void {
    let text = chunk.toString("latin1");
    if (this.skipping) {
      const newline = text.indexOf("\n");
      if (newline === -1) return;
      this.skipping = false;
      text = text.slice(newline);
    }
    text = this.carry + text;
    const end = text.lastIndexOf("\n") + 1;
    for (const match of text.slice(0, end).matchAll(/^# at (\d+)$|^#\d{6} [^\n]*Start: binlog v/gm)) {
      if (match[1] !== undefined) this.position = Number(match[1]);
      else this.file += 1;
    }
    const rest = text.slice(end);
    this.skipping = rest.length > 512;
    this.carry = this.skipping ? rest.slice(0, 512) : rest;
  }
}

/** Passes the decoder's text on unchanged, reporting where it is at most every 250 ms. */
function positionTap(onPosition: ((file: number, position: number) => void) | undefined): Transform {
  const positions = new DecodedPositions();
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (onPosition) {
        positions.push(chunk);
        const now = Date.now();
        const at = positions.current;
        if (at && now - last >= 250) {
          last = now;
          onPosition(at.file, at.position);
        }
      }
      callback(null, chunk);
    },
  });
}

/** The bytes fetchBinlogs writes for the plan: every planned binlog as the server wrote it. */
export function binlogBytes(plan: RestorePlan<RestoreBinlog>): number {
  return plan.binlogs.reduce((sum, { manifest }) => sum + manifest.size, 0);
}

/** One mariadb-binlog (or applier) pass: consecutive files of one source, from a position to a position. */
export interface ReplayRun {
  readonly source: string;
  /** Relative to the download dir (`<source>/<file>`). */
  readonly files: string[];
  readonly startPosition: number;
  readonly stopPosition: number;
  /** The GTIDs executed before this run: replay applies nothing of these again. */
  readonly backupGtids: string;
  /** The GTIDs executed once this run is replayed, for an applier's UNTIL clause. */
  readonly untilPosition: string;
}

export interface ReplayRange {
  /** One per stretch of one source's binlogs; a switch to another source starts a new one. */
  readonly runs: ReplayRun[];
  /** Every file replayed, in order. */
  readonly files: string[];
  /** The last transaction replayed; null when the backup itself is the target. */
  readonly lastTransaction: BinlogTransaction | null;
  /** The GTIDs executed once replay is done (the backup's and every replayed one). */
  readonly untilPosition: string;
  /** The backup's GTIDs. */
  readonly backupGtids: string;
}

/**
 * What replay applies, read from the downloaded files themselves so that every stop is exact:
 * from the backup's exact position (or, where the chain enters another source's binlog, from the
 * first transaction not yet executed, found by GTID) to after the last transaction at or before
 * the target second (time), or after the target transaction (GTID).
 */
export async function replayRange(plan: RestorePlan, dir: string): Promise<ReplayRange> {
  const none: ReplayRange = {
    runs: [],
    files: [],
    lastTransaction: null,
    untilPosition: plan.backup.binlog.gtidSet,
    backupGtids: plan.backup.binlog.gtidSet,
  };
  if (plan.binlogs.length === 0) return none;
  const engine = plan.backup.engine.name;
  const backupSet = gtidModel(engine).parseSet(plan.backup.binlog.gtidSet);
  let position = backupSet;
  const replayed = new Set<string>();
  const target = plan.target;
  const targetMicros = target.kind === "time" ? requireMicros(target.time, "the target time") : 0;
  let last: BinlogTransaction | null = null;
  const runs: ReplayRun[] = [];
  let run: { source: string; files: string[]; startPosition: number; before: string } | undefined;
  let stopPosition = 0;
  let found = false;
  const close = () => {
    if (run && stopPosition > 0) {
      runs.push({
        source: run.source,
        files: run.files,
        startPosition: run.startPosition,
        stopPosition,
        backupGtids: run.before,
        untilPosition: position.toString(),
      });
    }
    run = undefined;
    stopPosition = 0;
  };
  // A file of an ancestor history is cut at the branch point: what follows it there is a future
  // the restored history discarded, and the next link (another history's) never continues it.
  let previousCut = false;
  for (const planned of plan.binlogs) {
    const name = downloadedName(planned.manifest);
    const continuing =
      !previousCut && run?.source === planned.manifest.source && planned.startPosition === FILE_START;
    if (!continuing) close();
    const stopAt = planned.stopAt === null ? undefined : gtidModel(engine).parseSet(planned.stopAt);
    let cut = false;
    previousCut = stopAt !== undefined;
    // Where this file's replay starts: a position the plan gives, or the first transaction the
    // GTIDs executed so far lack (a switch to another source's binlog).
    const start = planned.startPosition;
    let replaying = false;
    const reader = new BinlogReader({
      crc32: fastCrc32,
      onTransaction: (transaction) => {
        if (found || cut) return;
        if (start !== null && transaction.startPosition < start) return;
        if (stopAt && transaction.gtid !== null && !stopAt.includes(transaction.gtid)) {
          cut = true;
          return;
        }
        if (transaction.gtid === null) {
          throw new RewindError(
            ErrorNames.binlogInvalid,
            `${name} holds a transaction without a GTID at offset ${transaction.startPosition} (gtid_mode was not ON); Rewind replays by GTID only, so nothing was restored`,
          );
        }
        if (position.includes(transaction.gtid)) {
          // Skipped only before a switched-to file's first new transaction: a run's later files
          // are replayed whole. A MariaDB position holds one GTID per domain, so a transaction
          // "included" by its sequence number that neither the backup holds nor this replay
          // applied belongs to another history: a failover lost transactions the old primary
          // had shipped, and the new primary wrote others under the same numbers.
          if (!replaying && !continuing) {
            if (!backupSet.includes(transaction.gtid) && !replayed.has(transaction.gtid)) {
              throw new RewindError(
                ErrorNames.planRefused,
                `${name} holds ${transaction.gtid}, which this replay never applied although it applied the sequence number ${transaction.gtid.split("-").at(-1)} of its domain from another server (up to ${position}): the binlogs of ${planned.manifest.source} and those replayed before it are two different histories, and no history record in S3 tells them apart (a failover that lost shipped transactions before the promoted host's binlog-stream recorded its branch). Nothing was restored; \`rewind-agent list\` shows the histories; restore to a point before the failover, or from a backup taken after it`,
              );
            }
            return;
          }
          throw new RewindError(
            ErrorNames.planRefused,
            `${name} holds ${transaction.gtid} at offset ${transaction.startPosition}, after transactions not yet executed, but it is already executed: its transactions are not in one order with the binlogs before it, and replaying them would apply it twice. Nothing was restored; restore to a point before ${planned.manifest.file} or from a backup taken after it`,
          );
        }
        const committed = transaction.commitMicros ?? transaction.timestamp * 1e6;
        if (target.kind === "time" && !withinTime(engine, targetMicros, committed)) {
          found = true;
          return;
        }
        if (!replaying) {
          replaying = true;
          // A new run starts at its first transaction to apply: a file may begin with transactions
          // already executed (a restored server's binlog of its own replay), skipped above.
          run ??= {
            source: planned.manifest.source,
            files: [],
            startPosition: transaction.startPosition,
            before: position.toString(),
          };
          run.files.push(name);
        }
        last = transaction;
        position = position.add(transaction.gtid);
        replayed.add(transaction.gtid);
        stopPosition = transaction.endPosition;
        if (target.kind === "gtid" && transaction.gtid === target.gtid) found = true;
      },
    });
    for await (const chunk of createReadStream(path.join(dir, name))) reader.push(chunk as Buffer);
    reader.finish();
    if (found) break;
  }
  close();
  if (target.kind === "gtid" && (last as BinlogTransaction | null)?.gtid !== target.gtid) {
    throw new RewindError(
      ErrorNames.planRefused,
      `GTID ${target.gtid} is not in the planned binlogs; nothing was restored. Check the GTID with \`rewind-agent list\``,
    );
  }
  if (!last) return none;
  return {
    runs,
    files: runs.flatMap((each) => each.files),
    lastTransaction: last,
    untilPosition: position.toString(),
    backupGtids: plan.backup.binlog.gtidSet,
  };
}

/**
 * Replays with `mariadb-binlog | mariadb` (`mysqlbinlog | mysql`): from the backup's exact position
 * in the first file to the stop position in the last, so no transaction is applied twice or missed.
 */
export async function replayBinlogs(
  engine: Engine,
  range: ReplayRun,
  dir: string,
  defaultsFile: string,
  /** The pass's file index and the offset of the event the decoder has reached. */
  onPosition?: (file: number, position: number) => void,
): Promise<void> {
  if (range.files.length === 0) return;
  const decoder = startTool(
    engine.tools.binlog,
    engine.clientReplayArgs({
      files: range.files.map((file) => path.join(dir, file)),
      startPosition: range.startPosition,
      stopPosition: range.stopPosition,
      backupGtids: range.backupGtids,
      until: range.untilPosition,
    }),
  );
  decoder.stdin.end();
  const client = startTool(engine.tools.client, [
    `--defaults-extra-file=${defaultsFile}`,
    "--binary-mode",
    // A row-logged statement arrives as one BINLOG statement as large as its rows.
    "--max-allowed-packet=1G",
    ...engine.clientReplaySession,
  ]);
  client.stdout.resume();
  const supervisor = new PipelineSupervisor(["decoder", "pipe", "client"], () => {
    decoder.stop();
    client.stop();
  });
  await supervisor.run([
    ["decoder", decoder.exited],
    ["pipe", pipeline(decoder.stdout, positionTap(onPosition), client.stdin)],
    ["client", client.exited],
  ]);
  const failures = supervisor.failures();
  if (failures.length > 0) {
    // The client's own error (the statement the server refused) says why, whichever exit came
    // first: the decoder then dies of a broken pipe. A client the stop killed says nothing.
    const own = failures.find((f) => f.stage === "client" && !/killed by SIGTERM/.test(f.error.message));
    const reported = own ?? failures[0]!;
    throw new RewindError(
      ErrorNames.replay,
      `replaying binlogs failed: ${reported.error.message}. The restored datadir holds the backup plus part of the binlogs; restore again once the cause is fixed`,
      failures.map((f) => `${f.stage}: ${f.error.message}`).join("\n"),
    );
  }
}
