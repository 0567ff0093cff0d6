import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { allBlocks, type BlockSelection, selectBlocks } from "../../core/stream-blocks.js";
import { cachedDataKeys, decryptBuffer, decryptingStream } from "../encryption.js";
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
  /**
   * Only the files this accepts are needed (a partial table restore): of a backup stored in
   * blocks, only the blocks holding them are fetched and decoded. The sink still gets other
   * files' chunks from those blocks.
   */
  readonly keep?: (path: string) => boolean;
}

/** What decoding `stream` for `keep` fetches: its blocks holding those files, or all of it. */
export function blocksToFetch(
  stream: StoredStream,
  keep: ((path: string) => boolean) | undefined,
): BlockSelection | undefined {
  if (!stream.blocks) return undefined;
  if (keep) return selectBlocks(stream.blocks, keep);
  const all = allBlocks(stream.blocks);
  return {
    ranges: [all],
    blocks: all.blocks.length,
    storedBytes: all.length,
    rawBytes: stream.blocks.rawBytes.reduce((sum, size) => sum + size, 0),
  };
}

/**
 * S3 → verify → decrypt → zstd -d → sink. Any stage failing fails the whole; the error names
 * the first failure in the data's path (a hash mismatch before a decryption error, and so on).
 */
export async function decodeStream(stream: StoredStream, options: DecodeOptions): Promise<void> {
  const selection = blocksToFetch(stream, options.keep);
  const download = downloadStoredStream(stream, options, selection?.ranges);
  const decrypt = selection
    ? blockDecryption(
        options.keyring,
        stream.encryptionContext,
        selection.ranges.flatMap((range) => range.blocks),
      )
    : decryptingStream(options.keyring, stream.encryptionContext);
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

/**
 * Stored blocks → their zstd frames: each block (its stored size from the index) is one
 * Encryption SDK message, decrypted on its own and checked against the backup's encryption
 * context. A stream that does not end where its last block does is damaged.
 */
export function blockDecryption(
  keyring: KeyringNode,
  expectedContext: Record<string, string>,
  sizes: readonly number[],
): Transform {
  const materials = cachedDataKeys(keyring);
  let block = 0;
  let parts: Buffer[] = [];
  let buffered = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      (async () => {
        let rest = chunk;
        while (rest.length > 0) {
          const size = sizes[block];
          if (size === undefined) throw new Error("the stored stream goes on after its last block");
          const take = Math.min(size - buffered, rest.length);
          parts.push(rest.subarray(0, take));
          buffered += take;
          rest = rest.subarray(take);
          if (buffered === size) {
            const message = Buffer.concat(parts);
            parts = [];
            buffered = 0;
            block += 1;
            this.push(await decryptBuffer(materials, message, expectedContext));
          }
        }
      })().then(() => done(), done);
    },
    flush(done) {
      done(
        block === sizes.length
          ? null
          : new Error(`the stored stream ends inside block ${block + 1} of ${sizes.length}`),
      );
    },
  });
}
