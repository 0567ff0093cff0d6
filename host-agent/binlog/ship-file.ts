import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, readSync, statSync } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { BinlogReader, type BinlogSummary } from "../../core/binlog/parse.js";
import { fastCrc32 } from "../../core/crc32.js";
import type { EngineName } from "../../core/engine.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { type GtidSet, gtidModel } from "../../core/gtid/index.js";
import type { SegmentRecord } from "../../core/manifest.js";
import { formatMicros } from "../../core/time.js";
import { encryptInto, encryptingStream } from "../encryption.js";
import { log } from "../log.js";
import { PipelineSupervisor } from "../pipeline.js";
import { SegmentWriter } from "../s3/segment-writer.js";
import { startTool } from "../tool.js";

export interface ShippedFile {
  readonly summary: BinlogSummary;
  /**
   * Set when the server crashed with the file open: it was shipped up to its last complete
   * transaction (`summary.size` bytes), of a file `fileBytes` long on disk.
   */
  readonly crashRecovered?: { readonly fileBytes: number };
  /** The GTIDs the file adds to those executed before it. */
  readonly gtidsAdded: string;
  /** MySQL: when its last transaction committed, to the microsecond. */
  readonly lastCommitTime: string | null;
  readonly sha256: string;
  readonly stored: SegmentRecord;
  readonly storedSha256: string;
}

export interface StoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly keyring: KeyringNode;
  readonly encryptionContext: Record<string, string>;
  readonly compressionLevel: number;
  readonly partSize: number;
  readonly concurrency: number;
}

/** LOG_EVENT_BINLOG_IN_USE_F, in the format description event's flags (offset 4 + 17). */
const IN_USE_FLAG = 0x1;

/**
 * Ships a binlog the server no longer writes. One that ends with its rotate or stop event goes
 * whole. One the server crashed with has neither, and its format description event still carries
 * the in-use flag: it goes up to its last complete transaction, which is exactly what the server's
 * crash recovery keeps (InnoDB commits a prepared transaction whose XID event the binlog holds
 * and rolls back the rest; MariaDB KB "Binary Log ... crash recovery", MySQL 8.0 reference
 * "Binary Logging Options and Variables: sync_binlog"); an unfinished transaction or torn event
 * after it was never committed. The next file's GTID list then follows it exactly.
 */
export async function shipClosedBinlog(
  options: StoreOptions & { readonly engine: EngineName; readonly path: string },
): Promise<ShippedFile> {
  const fileBytes = statSync(options.path).size;
  const crashed = readInUseFlag(options.path);
  let upTo: number | undefined;
  if (crashed) {
    const scan = await scanBinlog(options.path);
    if (!scan.closed) upTo = scan.completeEnd;
  }
  let shipped = await shipBinlogFile({ ...options, ...(upTo !== undefined ? { upTo } : {}) });
  if (!shipped.summary.closed && upTo === undefined) {
    // No rotate event, though the flag was cleared: shipped again up to its last transaction.
    upTo = shipped.summary.completeEnd;
    shipped = await shipBinlogFile({ ...options, upTo });
  }
  if (upTo === undefined) return shipped;
  log("warn", "the server crashed with this binlog open: shipped up to its last complete transaction", {
    path: options.path,
    shippedBytes: upTo,
    fileBytes,
    lastGtid: shipped.summary.lastGtid,
  });
  return { ...shipped, crashRecovered: { fileBytes } };
}

function readInUseFlag(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(4 + 19);
    const read = readSync(fd, head, 0, head.length, 0);
    return read === head.length && (head.readUInt16LE(4 + 17) & IN_USE_FLAG) !== 0;
  } finally {
    closeSync(fd);
  }
}

/** Every whole event of a file, checked, without storing it. */
async function scanBinlog(file: string): Promise<BinlogSummary> {
  const reader = new BinlogReader({ crc32: fastCrc32 });
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }))
    reader.push(chunk as Buffer);
  return reader.snapshot();
}

/**
 * Reads one binlog from disk (or its first `upTo` bytes), checks every event's CRC-32 while
 * hashing it, and stores it compressed and encrypted as one object (multipart, a checksum on
 * every part). A file read whole that has no rotate or stop event comes back with
 * `summary.closed` false; the caller decides (shipClosedBinlog).
 */
export async function shipBinlogFile(
  options: StoreOptions & { readonly engine: EngineName; readonly path: string; readonly upTo?: number },
): Promise<ShippedFile> {
  let added: GtidSet = gtidModel(options.engine).empty();
  let lastCommitMicros: number | null = null;
  const reader = new BinlogReader({
    crc32: fastCrc32,
    onTransaction: (transaction) => {
      if (transaction.gtid === null) {
        throw new RewindError(
          ErrorNames.binlogInvalid,
          `${options.path} holds a transaction without a GTID at offset ${transaction.startPosition}: the server runs with gtid_mode OFF. Rewind restores by GTID; set gtid_mode=ON and enforce_gtid_consistency=ON, then take a new full backup`,
        );
      }
      added = added.add(transaction.gtid);
      lastCommitMicros = transaction.commitMicros ?? lastCommitMicros;
    },
  });
  const hash = createHash("sha256");
  const inspect = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        reader.push(chunk);
        hash.update(chunk);
        callback(null, chunk);
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  const range = options.upTo !== undefined ? { start: 0, end: options.upTo - 1 } : {};
  const { stored, storedSha256 } = await storeCompressed(
    pipelineSource(createReadStream(options.path, { highWaterMark: 1024 * 1024, ...range }), inspect),
    options,
    `shipping ${options.path}`,
  );
  // A closed file, or a crashed one's prefix, ends on a whole event; anything else is damage.
  const summary =
    reader.snapshot().closed || options.upTo !== undefined ? reader.finish() : reader.snapshot();
  const committed = lastCommitMicros as number | null;
  return {
    summary,
    gtidsAdded: added.toString(),
    lastCommitTime: committed === null ? null : formatMicros(committed),
    sha256: hash.digest("hex"),
    stored,
    storedSha256,
  };
}

/** `source` piped through `through`, as one readable whose errors reach the consumer. */
function pipelineSource(source: Readable, through: Transform): Readable {
  source.once("error", (error) => through.destroy(error));
  return source.pipe(through);
}

/**
 * Stores `input` as one object: zstd, then the Encryption SDK under `encryptionContext`, then S3
 * (one PutObject with its SHA-256 when smaller than a part, else multipart with a checksum on
 * every part; one object whatever its size: a binlog is at most 1 GiB).
 */
export async function storeCompressed(
  input: Readable,
  options: StoreOptions,
  what: string,
): Promise<{ stored: SegmentRecord; storedSha256: string }> {
  const zstd = startTool("zstd", [`-${options.compressionLevel}`, "-q", "-c", "-"]);
  const writer = new SegmentWriter({
    client: options.client,
    bucket: options.bucket,
    keyFor: () => options.key,
    partSize: options.partSize,
    segmentSize: Number.MAX_SAFE_INTEGER,
    concurrency: options.concurrency,
  });
  // The writer's own error (S3 refusing or unreachable) is the one to report; without a listener
  // it would also end the process as an uncaught exception.
  let uploadError: Error | undefined;
  writer.once("error", (error) => {
    uploadError = error;
  });
  const encrypt = encryptingStream(options.keyring, options.encryptionContext);
  encrypt.once("error", (error: Error) => {
    uploadError ??= error;
  });
  // On the first failure zstd is stopped and its output drained: a paused encryption stream
  // would leave it blocked on a full pipe, and its exit (which every stage waits for) never come.
  const supervisor = new PipelineSupervisor(["read", "zstd", "upload"], () => {
    zstd.stop();
    zstd.stdout.unpipe();
    zstd.stdout.resume();
    writer.destroy();
  });
  await supervisor.run([
    ["read", pipeline(input, zstd.stdin)],
    ["zstd", zstd.exited],
    // One encryption stream, one data key: the Encryption SDK asks KMS when it is built.
    ["upload", encryptInto(zstd.stdout, encrypt, writer)],
  ]);
  const cause = supervisor.cause();
  if (cause) {
    // The writer's or the encryption's own error (S3 or KMS refusing) says more than the
    // stream that broke because of it.
    const reason = uploadError ?? cause.error;
    if (reason instanceof RewindError) throw reason;
    throw new RewindError(ErrorNames.upload, `${what} failed: ${reason.message}`);
  }
  return { stored: writer.segments[0]!, storedSha256: writer.streamHash.digest("hex") };
}
