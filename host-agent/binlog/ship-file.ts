import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { BinlogReader, type BinlogSummary } from "../../core/binlog/parse.js";
import { type Crc32, crc32 as jsCrc32 } from "../../core/crc32.js";
import type { SegmentRecord } from "../../core/manifest.js";
import { encryptInto, encryptingStream } from "../encryption.js";
import { SegmentWriter } from "../s3/segment-writer.js";
import { StderrTail } from "../tool.js";

const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

export interface ShippedFile {
  readonly summary: BinlogSummary;
  readonly sha256: string;
  readonly stored: SegmentRecord;
  readonly storedSha256: string;
}

/**
 * Reads one closed binlog from disk, checks every event's CRC-32 while hashing it, and stores it
 * compressed and encrypted as one object (multipart, a checksum on every part).
 */
export async function shipBinlogFile(options: {
  readonly path: string;
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly keyring: KeyringNode;
  readonly encryptionContext: Record<string, string>;
  readonly compressionLevel: number;
  readonly partSize: number;
  readonly concurrency: number;
}): Promise<ShippedFile> {
  const reader = new BinlogReader({ crc32: nativeCrc32 ?? jsCrc32 });
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
  const zstd = spawn("zstd", [`-${options.compressionLevel}`, "-q", "-c", "-"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stderr = new StderrTail();
  zstd.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  const zstdDone = new Promise<void>((resolve, reject) => {
    zstd.once("error", reject);
    zstd.once("close", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`zstd exited with ${signal ?? code}: ${stderr}`)),
    );
  });
  const writer = new SegmentWriter({
    client: options.client,
    bucket: options.bucket,
    keyFor: () => options.key,
    partSize: options.partSize,
    // One object per binlog file: max_binlog_size is at most 1 GiB.
    segmentSize: Number.MAX_SAFE_INTEGER,
    concurrency: options.concurrency,
  });
  const results = await Promise.allSettled([
    pipeline(createReadStream(options.path, { highWaterMark: 1024 * 1024 }), inspect, zstd.stdin),
    zstdDone,
    encryptInto(zstd.stdout, encryptingStream(options.keyring, options.encryptionContext), writer),
  ]);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) {
    if (zstd.exitCode === null) zstd.kill("SIGTERM");
    writer.destroy();
    throw new Error(`shipping ${options.path} failed: ${(failure.reason as Error).message}`);
  }
  const summary = reader.finish();
  return {
    summary,
    sha256: hash.digest("hex"),
    stored: writer.segments[0]!,
    storedSha256: writer.streamHash.digest("hex"),
  };
}
