import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  type BinlogChunkManifest,
  CHUNK_HEADER_PROBE_BYTES,
  CHUNK_KEY,
  CHUNK_PREAMBLE_BYTES,
  type ChunkedRecord,
  type ChunkObject,
  chainChunks,
  chunkedRecord,
  chunkHeaderLength,
  decodeChunkObject,
} from "../binlog/chunk.js";
import { type BinlogRecord, binlogSequence } from "../binlog/manifest.js";
import { binlogChunksPrefix, type ClusterLocation } from "../layout.js";
import type { UnreplayableRecord } from "../restorable-window.js";
import { listObjects } from "./objects.js";

/** A listed object that is a chunk (its key names its file and byte range), with its file. */
function chunkObjectOf(object: { key: string; size: number }): (ChunkObject & { file: string }) | undefined {
  const match = CHUNK_KEY.exec(object.key);
  if (!match) return undefined;
  return {
    key: object.key,
    file: match[1]!,
    start: Number(match[2]),
    end: Number(match[3]),
    size: object.size,
  };
}

/** What one LIST shows of a file's chunks (core/binlog/chunk `chainChunks`). */
export interface ChunkListing {
  readonly file: string;
  /** The chunks that follow one another from offset 0. */
  readonly chain: ChunkObject[];
  /** Chunks past a missing range. */
  readonly beyond: ChunkObject[];
}

/**
 * The chunks a source shipped of files after `afterFile` (all files when omitted), by file: one
 * LIST (a page per 1,000 chunks) of the names past that file, whatever the history before it.
 */
export async function listChunks(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  afterFile?: string,
): Promise<ChunkListing[]> {
  const prefix = binlogChunksPrefix(location, source);
  // "~" sorts after every chunk name, so the listing starts with the next file's chunks.
  const startAfter = afterFile === undefined ? undefined : `${prefix}${afterFile}/~`;
  const byFile = new Map<string, ChunkObject[]>();
  for (const object of (await listObjects(client, bucket, prefix, { startAfter })).objects) {
    const chunk = chunkObjectOf(object);
    if (!chunk) continue;
    byFile.set(chunk.file, [...(byFile.get(chunk.file) ?? []), chunk]);
  }
  return [...byFile]
    .map(([file, objects]) => ({ file, ...chainChunks(objects) }))
    .sort((a, b) => binlogSequence(a.file) - binlogSequence(b.file));
}

/** One file's chunks: the LIST of its own prefix. */
export async function listFileChunks(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  file: string,
): Promise<ChunkListing> {
  const prefix = binlogChunksPrefix(location, source, file);
  const objects = (await listObjects(client, bucket, prefix)).objects.flatMap((object) => {
    const chunk = chunkObjectOf(object);
    return chunk ? [chunk] : [];
  });
  return { file, ...chainChunks(objects) };
}

async function getRange(
  client: S3Client,
  bucket: string,
  key: string,
  from: number,
  to: number,
): Promise<Buffer> {
  const object = await client.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${from}-${to}` }),
  );
  return Buffer.from(await object.Body!.transformToByteArray());
}

/** A chunk's header, from the object's first bytes: one ranged GET (two for a huge header). */
export async function readChunkHeader(
  client: S3Client,
  bucket: string,
  chunk: ChunkObject,
): Promise<BinlogChunkManifest> {
  const where = `s3://${bucket}/${chunk.key}`;
  let start = await getRange(client, bucket, chunk.key, 0, CHUNK_HEADER_PROBE_BYTES - 1);
  const end = CHUNK_PREAMBLE_BYTES + chunkHeaderLength(start, where);
  if (start.length < end && start.length === CHUNK_HEADER_PROBE_BYTES) {
    start = Buffer.concat([start, await getRange(client, bucket, chunk.key, start.length, end - 1)]);
  }
  return decodeChunkObject(start.subarray(0, end), where, chunk).manifest;
}

/**
 * The files a source is writing (or closed without a file manifest yet), each as the record of
 * the prefix its chain of chunks holds: one LIST, and one header per file. Chunks past a missing
 * range cannot be replayed (replay needs every byte before them): they come as an unreplayable
 * record, which planning never replays but names as the gap when no other source holds those
 * transactions.
 */
export async function readChunkedTail(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  indexed: ReadonlySet<string>,
  afterFile?: string,
): Promise<BinlogRecord[]> {
  const records: BinlogRecord[] = [];
  for (const { file, chain, beyond } of await listChunks(client, bucket, location, source, afterFile)) {
    if (indexed.has(file)) continue;
    if (chain.length > 0)
      records.push(chunkedRecord(await readChunkHeader(client, bucket, chain.at(-1)!), chain));
    if (beyond.length > 0) {
      const newest = await readChunkHeader(client, bucket, beyond.at(-1)!);
      const missingFrom = chain.at(-1)?.end ?? 0;
      const past: UnreplayableRecord = {
        ...chunkedRecord(newest, [...chain, ...beyond]),
        unreplayable: `bytes ${missingFrom}-${beyond[0]!.start} of ${file} from ${source} were never shipped, and the ${beyond.length} chunk(s) after them cannot be replayed without them`,
      };
      records.push(past);
    }
  }
  return records;
}

/**
 * A planned chunked file as S3 holds it now: its first `chunks` chunks, the newest of which must
 * still carry the hashes the plan verified. One LIST and one header.
 */
export async function readPlannedChunks(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  planned: {
    readonly source: string;
    readonly file: string;
    readonly chunks: number;
    /** The newest planned chunk's, when the plan recorded them. */
    readonly sha256?: string | undefined;
    readonly storedSha256?: string | undefined;
  },
): Promise<ChunkedRecord> {
  const { chain } = await listFileChunks(client, bucket, location, planned.source, planned.file);
  if (chain.length < planned.chunks) {
    throw new Error(
      `${planned.source}/${planned.file} has ${chain.length} chunk(s) from offset 0, the plan names ${planned.chunks}`,
    );
  }
  const used = chain.slice(0, planned.chunks);
  const newest = await readChunkHeader(client, bucket, used.at(-1)!);
  if (
    (planned.sha256 !== undefined && newest.sha256 !== planned.sha256) ||
    (planned.storedSha256 !== undefined && newest.storedSha256 !== planned.storedSha256)
  ) {
    throw new Error(
      `chunk ${planned.chunks - 1} of ${planned.source}/${planned.file} is not the one verified`,
    );
  }
  return chunkedRecord(newest, used);
}
