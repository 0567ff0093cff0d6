import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { BackupManifest, SegmentRecord } from "../../core/manifest.js";
import { checkBlocks, type StoredRange, type StreamBlocks } from "../../core/stream-blocks.js";

/** A stored stream: a backup's segments, or a binlog's single object. */
export interface StoredStream {
  /** Names it in messages: a backup id or a binlog file. */
  readonly label: string;
  readonly segments: readonly SegmentRecord[];
  readonly storedBytes: number;
  readonly storedSha256: string;
  readonly encryptionContext: Record<string, string>;
  /** A backup stored in blocks (core/stream-blocks.ts). */
  readonly blocks?: StreamBlocks;
}

export function backupStream(manifest: BackupManifest): StoredStream {
  if (manifest.blocks) checkBlocks(manifest.blocks, manifest, `the manifest of backup ${manifest.backupId}`);
  return {
    ...(manifest.blocks ? { blocks: manifest.blocks } : {}),
    label: `backup ${manifest.backupId}`,
    segments: manifest.segments,
    storedBytes: manifest.storedBytes,
    storedSha256: manifest.storedSha256,
    encryptionContext: manifest.encryption.context,
  };
}

export interface DownloadOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Parts fetched at once; memory is about concurrency × part size. */
  readonly concurrency: number;
  readonly onBytes?: (bytes: number) => void;
}

interface PartRange {
  readonly segment: SegmentRecord;
  /** Its offset in the whole stored stream. */
  readonly at: number;
  readonly partNumber: number;
  readonly start: number;
  readonly size: number;
  readonly checksumSha256: string;
}

function partRanges(stream: StoredStream): PartRange[] {
  const ranges: PartRange[] = [];
  let at = 0;
  for (const segment of stream.segments) {
    let start = 0;
    for (const part of segment.parts) {
      ranges.push({
        segment,
        at,
        partNumber: part.partNumber,
        start,
        size: part.size,
        checksumSha256: part.checksumSha256,
      });
      start += part.size;
      at += part.size;
    }
    if (start !== segment.size) {
      throw new RewindError(
        ErrorNames.verify,
        `manifest parts of ${segment.key} add up to ${start} bytes, not ${segment.size}`,
      );
    }
  }
  return ranges;
}

function mismatch(what: string): RewindError {
  return new RewindError(
    ErrorNames.verify,
    `${what}; the stored backup is damaged or was changed, and nothing from it was used. Restore from another backup and run \`rewind-agent verify --deep\` on this one`,
  );
}

async function fetchPart(options: DownloadOptions, range: PartRange): Promise<Buffer> {
  const object = await options.client.send(
    new GetObjectCommand({
      Bucket: options.bucket,
      Key: range.segment.key,
      Range: `bytes=${range.start}-${range.start + range.size - 1}`,
    }),
  );
  const body = Buffer.from(await object.Body!.transformToByteArray());
  if (body.length !== range.size) {
    throw mismatch(
      `part ${range.partNumber} of ${range.segment.key} has ${body.length} bytes, the manifest says ${range.size}`,
    );
  }
  if (createHash("sha256").update(body).digest("base64") !== range.checksumSha256) {
    throw mismatch(
      `part ${range.partNumber} of ${range.segment.key} does not match its SHA-256 in the manifest`,
    );
  }
  return body;
}

/**
 * The stored stream of a backup, in order: parts fetched in parallel with ranged GETs, each
 * checked against its SHA-256 before it is passed on, and every segment and the whole stream
 * re-hashed against the manifest at its end. A mismatch fails the stream with VerifyFailed.
 *
 * With `wanted` (some blocks of a backup stored in blocks), only the parts holding those runs
 * are fetched, each checked against its SHA-256, and only the runs' bytes passed on, in order.
 */
export function downloadStoredStream(
  stream: StoredStream,
  options: DownloadOptions,
  wanted?: readonly StoredRange[],
): Readable {
  const whole =
    !wanted || (wanted.length === 1 && wanted[0]!.offset === 0 && wanted[0]!.length === stream.storedBytes);
  if (!whole)
    return Readable.from(someParts(stream, options, wanted), { objectMode: false, highWaterMark: 1 });
  async function* parts(): AsyncGenerator<Buffer> {
    const ranges = partRanges(stream);
    const whole = createHash("sha256");
    let segmentHash = createHash("sha256");
    let downloaded = 0;
    const pending: Promise<Buffer>[] = [];
    let next = 0;
    const fill = () => {
      while (pending.length < options.concurrency && next < ranges.length) {
        const request = fetchPart(options, ranges[next++]!);
        request.catch(() => {});
        pending.push(request);
      }
    };
    for (let i = 0; i < ranges.length; i++) {
      fill();
      const body = await pending.shift()!;
      const range = ranges[i]!;
      whole.update(body);
      segmentHash.update(body);
      downloaded += body.length;
      options.onBytes?.(downloaded);
      if (range.start + range.size === range.segment.size) {
        if (segmentHash.digest("hex") !== range.segment.sha256) {
          throw mismatch(`segment ${range.segment.key} does not match its SHA-256 in the manifest`);
        }
        segmentHash = createHash("sha256");
      }
      yield body;
    }
    if (downloaded !== stream.storedBytes || whole.digest("hex") !== stream.storedSha256) {
      throw mismatch(`the stored stream of ${stream.label} does not match the manifest's size and SHA-256`);
    }
  }
  return Readable.from(parts(), { objectMode: false, highWaterMark: 1 });
}

/** The parts holding `wanted`'s runs, fetched and checked, cut down to the runs. */
async function* someParts(
  stream: StoredStream,
  options: DownloadOptions,
  wanted: readonly StoredRange[],
): AsyncGenerator<Buffer> {
  const overlap = (part: PartRange, range: StoredRange) =>
    part.at < range.offset + range.length && range.offset < part.at + part.size;
  const ranges = partRanges(stream).filter((part) => wanted.some((range) => overlap(part, range)));
  const expected = wanted.reduce((sum, range) => sum + range.length, 0);
  let passed = 0;
  const pending: Promise<Buffer>[] = [];
  let next = 0;
  for (let i = 0; i < ranges.length; i++) {
    while (pending.length < options.concurrency && next < ranges.length) {
      const request = fetchPart(options, ranges[next++]!);
      request.catch(() => {});
      pending.push(request);
    }
    const body = await pending.shift()!;
    const part = ranges[i]!;
    for (const range of wanted) {
      if (!overlap(part, range)) continue;
      const from = Math.max(range.offset - part.at, 0);
      const to = Math.min(range.offset + range.length - part.at, part.size);
      passed += to - from;
      // Progress counts the runs' bytes: their total is what the caller measures against.
      options.onBytes?.(passed);
      yield body.subarray(from, to);
    }
  }
  if (passed !== expected) {
    throw mismatch(`the stored stream of ${stream.label} is shorter than its block index says`);
  }
}
