import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { decryptingStream } from "../encryption.js";
import { PipelineSupervisor } from "../pipeline.js";
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
  const supervisor = new PipelineSupervisor(["download", "zstd", "sink"], () => {
    zstd.stop();
    options.sink.destroy();
  });
  await supervisor.run([
    // Download, verification and decryption: one stream, which fails with what went wrong first.
    ["download", pipeline(download, decrypt, zstd.stdin)],
    ["zstd", zstd.exited],
    ["sink", pipeline(zstd.stdout, options.sink)],
    ["sink", options.sinkDone ?? Promise.resolve()],
  ]);
  const failures = supervisor.failures().map((failure) => failure.error);
  if (failures.length === 0) return;
  // A verification failure (a hash or size that does not match) says the most, whenever it came.
  const verifyFailure = failures.find((error) => error instanceof RewindError);
  if (verifyFailure) throw verifyFailure;
  const first = failures[0]!;
  throw new RewindError(
    ErrorNames.verify,
    `cannot decode ${stream.label}: ${first.message}`,
    failures.map((error) => error.message).join("\n"),
  );
}
