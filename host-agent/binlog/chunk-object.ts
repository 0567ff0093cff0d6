import { createHash } from "node:crypto";
import zlib from "node:zlib";
import type { KeyringNode, NodeCachingMaterialsManager } from "@aws-crypto/client-node";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  BinlogChunkManifest,
  type ChunkObject,
  decodeChunkObject,
  encodeChunkObject,
} from "../../core/binlog/chunk.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { decryptBuffer, encryptBuffer } from "../encryption.js";
import { putWholeObject } from "../s3/put-whole.js";
import { startTool } from "../tool.js";

/** Node's own zstd (22.15 and later; the same frame format as the zstd tool), when it has one. */
const nodeZstd = zlib as unknown as {
  zstdCompressSync?: (input: Buffer, options: { params: Record<number, number> }) => Buffer;
  zstdDecompressSync?: (input: Buffer) => Buffer;
  constants: Record<string, number>;
};

/**
 * zstd over a buffer (chunks are small: stream.maxChunkMiB): in-process where Node has zstd,
 * which spares a process per chunk, else the `zstd` tool.
 */
async function zstdBuffer(input: Buffer, args: string[]): Promise<Buffer> {
  const level = args.find((arg) => /^-\d+$/.test(arg));
  if (level && nodeZstd.zstdCompressSync) {
    return nodeZstd.zstdCompressSync(input, {
      params: { [nodeZstd.constants.ZSTD_c_compressionLevel!]: Number(level.slice(1)) },
    });
  }
  if (args.includes("-d") && nodeZstd.zstdDecompressSync) return nodeZstd.zstdDecompressSync(input);
  const zstd = startTool("zstd", [...args, "-q", "-c", "-"]);
  const out: Buffer[] = [];
  zstd.stdout.on("data", (chunk: Buffer) => out.push(chunk));
  zstd.stdin.end(input);
  await zstd.exited;
  return Buffer.concat(out);
}

/** What the chunk's header says besides its stored payload, which storing it fills in. */
export type ChunkFacts = Omit<BinlogChunkManifest, "storedBytes" | "storedSha256" | "compression">;

/**
 * Stores one chunk as ONE object (one PutObject, or a multipart upload when a large transaction
 * makes it big; SHA-256 checksums sent): zstd, then the Encryption SDK with a cached data key for
 * the file's context, behind the header that is its manifest. Either is atomic, so the chunk
 * exists whole or not at all.
 */
export async function storeChunk(options: {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly materials: NodeCachingMaterialsManager | KeyringNode;
  readonly compressionLevel: number;
  readonly bytes: Buffer;
  readonly facts: ChunkFacts;
  /** Above this many stored bytes the chunk goes up as a multipart upload (s3/put-whole.ts). */
  readonly partBytes?: number;
}): Promise<BinlogChunkManifest> {
  const { facts } = options;
  const what = `shipping chunk ${facts.chunk} of ${facts.file}`;
  let payload: Buffer;
  try {
    const compressed = await zstdBuffer(options.bytes, [`-${options.compressionLevel}`]);
    payload = await encryptBuffer(options.materials, compressed, facts.encryption.context);
  } catch (error) {
    throw new RewindError(ErrorNames.upload, `${what} failed: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  const manifest = BinlogChunkManifest.parse({
    ...facts,
    storedBytes: payload.length,
    storedSha256: createHash("sha256").update(payload).digest("hex"),
    compression: { algorithm: "zstd", level: options.compressionLevel },
  });
  const body = encodeChunkObject(manifest, payload);
  try {
    await putWholeObject(options.client, options.bucket, options.key, body, {
      ...(options.partBytes ? { partBytes: options.partBytes } : {}),
    });
  } catch (error) {
    throw new RewindError(ErrorNames.upload, `${what} failed: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  return manifest;
}

/**
 * Downloads one chunk object and returns the binlog bytes it holds, checked three ways before
 * anything uses them: its header matches its key and its place in the chain, its payload's
 * SHA-256 matches the header, and (after decryption under the file's context and zstd) the
 * bytes' SHA-256 matches what the server wrote.
 */
export async function fetchChunk(options: {
  readonly client: S3Client;
  readonly bucket: string;
  readonly chunk: ChunkObject;
  readonly index: number;
  readonly materials: NodeCachingMaterialsManager | KeyringNode;
  readonly expectedContext: Record<string, string>;
  readonly label: string;
}): Promise<{ manifest: BinlogChunkManifest; bytes: Buffer }> {
  const { chunk, label } = options;
  const refuse = (problem: string) =>
    new RewindError(
      ErrorNames.verify,
      `${label} ${problem}; it is damaged or not the one planned, and nothing was restored`,
    );
  let body: Buffer;
  try {
    // With ChecksumMode the SDK checks the whole body against the SHA-256 S3 stored at upload.
    const object = await options.client.send(
      new GetObjectCommand({ Bucket: options.bucket, Key: chunk.key, ChecksumMode: "ENABLED" }),
    );
    body = Buffer.from(await object.Body!.transformToByteArray());
  } catch (error) {
    if (/checksum mismatch/i.test((error as Error).message)) {
      throw refuse(`does not match the checksum S3 stored for it (${(error as Error).message})`);
    }
    throw error;
  }
  let decoded: ReturnType<typeof decodeChunkObject>;
  try {
    decoded = decodeChunkObject(body, `s3://${options.bucket}/${chunk.key}`, chunk);
  } catch (error) {
    throw refuse(`cannot be read (${(error as Error).message})`);
  }
  const { manifest, payload } = decoded;
  if (manifest.chunk !== options.index)
    throw refuse(`says it is chunk ${manifest.chunk}, expected ${options.index}`);
  if (createHash("sha256").update(payload).digest("hex") !== manifest.storedSha256) {
    throw refuse("does not match the SHA-256 its header records");
  }
  let bytes: Buffer;
  try {
    const compressed = await decryptBuffer(options.materials, payload, options.expectedContext);
    bytes = await zstdBuffer(compressed, ["-d"]);
  } catch (error) {
    throw refuse(`cannot be decoded (${(error as Error).message})`);
  }
  if (
    bytes.length !== chunk.end - chunk.start ||
    createHash("sha256").update(bytes).digest("hex") !== manifest.sha256
  ) {
    throw refuse("does not match the SHA-256 of the bytes the server wrote");
  }
  return { manifest, bytes };
}
