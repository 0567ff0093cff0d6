import type { S3Client } from "@aws-sdk/client-s3";
import {
  type BinlogChunkManifest,
  type ChunkedRecord,
  chunkedRecord,
  parseChunkManifest,
} from "../binlog/chunk.js";
import { type BinlogRecord, binlogSequence } from "../binlog/manifest.js";
import { binlogChunkManifestKey, binlogChunksPrefix, type ClusterLocation } from "../layout.js";
import type { UnreplayableRecord } from "../restorable-window.js";
import { listKeys, readText } from "./objects.js";

/** What S3 holds of one file's chunks: their numbers (manifest and object both present). */
export interface ChunkListing {
  readonly file: string;
  readonly chunks: number[];
}

const CHUNK_KEY = /\/chunks\/([^/]+)\/(\d{6})\.(json|zst\.enc)$/;

/**
 * The chunks a source shipped of files after `afterFile` (all files when omitted), by file: one
 * LIST of the names past that file, whatever the history before it. A chunk counts once both its
 * object and its manifest are there (the manifest is written last).
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
  const { keys } = await listKeys(client, bucket, prefix, { startAfter });
  const parts = new Map<string, Map<number, Set<string>>>();
  for (const key of keys) {
    const match = CHUNK_KEY.exec(key);
    if (!match) continue;
    const [, file, chunk, kind] = match as unknown as [string, string, string, string];
    const files = parts.get(file) ?? new Map<number, Set<string>>();
    parts.set(file, files);
    const kinds = files.get(Number(chunk)) ?? new Set<string>();
    files.set(Number(chunk), kinds);
    kinds.add(kind);
  }
  return [...parts]
    .map(([file, chunks]) => ({
      file,
      chunks: [...chunks]
        .filter(([, kinds]) => kinds.size === 2)
        .map(([chunk]) => chunk)
        .sort((a, b) => a - b),
    }))
    .filter((listing) => listing.chunks.length > 0)
    .sort((a, b) => binlogSequence(a.file) - binlogSequence(b.file));
}

export async function readChunkManifest(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  file: string,
  chunk: number,
): Promise<BinlogChunkManifest> {
  const key = binlogChunkManifestKey(location, source, file, chunk);
  return parseChunkManifest(await readText(client, bucket, key), `s3://${bucket}/${key}`);
}

/**
 * The files a source is writing (or closed without a file manifest yet), each as the record of
 * its prefix shipped in chunks 0…k, from one LIST and one GET per file. Chunks shipped past a
 * missing one cannot be replayed (replay needs every byte before them): they come as an
 * unreplayable record, which planning never replays but names as the gap when no other source
 * holds those transactions.
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
  for (const { file, chunks } of await listChunks(client, bucket, location, source, afterFile)) {
    if (indexed.has(file)) continue;
    const hole = chunks.findIndex((chunk, index) => chunk !== index);
    const count = hole < 0 ? chunks.length : hole;
    if (count > 0) {
      records.push(chunkedRecord(await readChunkManifest(client, bucket, location, source, file, count - 1)));
    }
    if (hole >= 0) {
      const newest = await readChunkManifest(client, bucket, location, source, file, chunks.at(-1)!);
      const past: UnreplayableRecord = {
        ...chunkedRecord(newest),
        unreplayable: `chunk ${String(count).padStart(6, "0")} of ${file} from ${source} is missing, and chunks ${chunks
          .slice(hole)
          .join(", ")} cannot be replayed without it`,
      };
      records.push(past);
    }
  }
  return records;
}

/** Every chunk manifest of a planned chunked file, read in parallel; each must follow the one before. */
export async function readChunkManifests(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  record: ChunkedRecord,
  concurrency = 16,
): Promise<BinlogChunkManifest[]> {
  const manifests: BinlogChunkManifest[] = new Array(record.chunks);
  let next = 0;
  const worker = async () => {
    while (next < record.chunks) {
      const chunk = next++;
      manifests[chunk] = await readChunkManifest(client, bucket, location, record.source, record.file, chunk);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, record.chunks) }, worker));
  return manifests;
}
