import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { decryptingStream } from "../encryption.js";
import { startTool } from "../tool.js";
import { downloadStoredStream, type StoredStream } from "./download.js";

export interface DecodeOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly keyring: KeyringNode;
  readonly concurrency: number;
  /** Receives the raw xbstream. */
  readonly sink: Writable;
  /** Resolves when whatever consumes the sink has finished (a child process exiting, say). */
  readonly sinkDone?: Promise<void>;
  readonly onBytes?: (bytes: number) => void;
}

/**
 * S3 → verify → decrypt → zstd -d → sink. Any stage failing fails the whole; the error names
 * the first failure in the data's path (a hash mismatch before a decryption error, and so on).
 */
export async function decodeStream(stream: StoredStream, options: DecodeOptions): Promise<void> {
  const download = downloadStoredStream(stream, options);
  const decrypt = decryptingStream(options.keyring, stream.encryptionContext);
  const zstd = startTool("zstd", ["-d", "-q", "-c", "-"]);
  const stop = () => {
    zstd.stop();
    options.sink.destroy();
  };
  const results = await Promise.allSettled([
    pipeline(download, decrypt, zstd.stdin).catch((error) => {
      stop();
      throw error;
    }),
    zstd.exited.catch((error) => {
      stop();
      throw error;
    }),
    pipeline(zstd.stdout, options.sink),
    options.sinkDone ?? Promise.resolve(),
  ]);
  const failures = results.flatMap((result) =>
    result.status === "rejected" ? [result.reason as Error] : [],
  );
  if (failures.length === 0) return;
  const verifyFailure = failures.find((error) => error instanceof RewindError);
  if (verifyFailure) throw verifyFailure;
  const first = failures[0]!;
  throw new RewindError(
    ErrorNames.verify,
    `cannot decode ${stream.label}: ${first.message}`,
    failures.map((error) => error.message).join("\n"),
  );
}
