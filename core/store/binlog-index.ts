import { createHash } from "node:crypto";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";
import {
  type BinlogManifest,
  BinlogRecord,
  binlogSequence,
  parseBinlogManifest,
  recordOf,
} from "../binlog/manifest.js";
import { ErrorNames, RewindError } from "../errors.js";
import {
  binlogIndexChunkKey,
  binlogIndexPrefix,
  binlogManifestKey,
  binlogsPrefix,
  type ClusterLocation,
} from "../layout.js";
import { parseManifest } from "../manifest.js";
import { listKeys, readText } from "./objects.js";

/**
 * The per-source index of shipped binlogs, so that work per run does not grow with history:
 * `binlogs/<source>/index/<chunk>.json` holds the records of files numbered
 * chunk×1000 … chunk×1000+999. binlog-push adds to the newest chunk after it writes manifests;
 * planning reads the chunks from a backup's file on, not every manifest. Manifests stay the
 * truth: a manifest the index lacks (a push killed before updating it) is added by the next push,
 * and what a restore uses is read from its manifest.
 */
export const CHUNK_FILES = 1000;

export const BinlogIndexChunk = z.object({
  formatVersion: z.literal(1),
  source: z.string(),
  records: z.array(BinlogRecord),
});
export type BinlogIndexChunk = z.infer<typeof BinlogIndexChunk>;

export const chunkOf = (file: string): number => Math.floor(binlogSequence(file) / CHUNK_FILES);

const bySequence = (a: { file: string }, b: { file: string }) =>
  binlogSequence(a.file) - binlogSequence(b.file);

/** The chunk keys of a source's index, oldest first. */
function listChunks(client: S3Client, bucket: string, location: ClusterLocation, source: string) {
  return listKeys(client, bucket, binlogIndexPrefix(location, source)).then(({ keys }) =>
    keys.filter((key) => key.endsWith(".json")).sort(),
  );
}

/** A chunk and its ETag, which says later whether anyone rewrote it. */
async function readChunkTagged(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<{ chunk: BinlogIndexChunk; etag: string | undefined }> {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const chunk = parseManifest(
    BinlogIndexChunk,
    await object.Body!.transformToString(),
    `s3://${bucket}/${key}`,
    "binlog index",
  );
  return { chunk, etag: object.ETag };
}

async function readChunk(client: S3Client, bucket: string, key: string): Promise<BinlogIndexChunk> {
  return parseManifest(
    BinlogIndexChunk,
    await readText(client, bucket, key),
    `s3://${bucket}/${key}`,
    "binlog index",
  );
}

/**
 * A source's shipped binlogs from the chunk holding `fromFile` on (all when omitted), in order:
 * one LIST and one GET per chunk read, however many files.
 */
export async function readBinlogIndex(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  fromFile?: string,
): Promise<BinlogRecord[]> {
  const first = fromFile === undefined ? 0 : chunkOf(fromFile);
  const keys = (await listChunks(client, bucket, location, source)).filter(
    (key) => key >= binlogIndexChunkKey(location, source, first),
  );
  const records = new Map<string, BinlogRecord>();
  for (const key of keys) {
    for (const record of (await readChunk(client, bucket, key)).records) records.set(record.file, record);
  }
  return [...records.values()].sort(bySequence);
}

/**
 * A source's shipped binlogs from the newest index chunk back to the first chunk whose oldest
 * record `covered` accepts (all when none does): a plan from a backup needs no file of another
 * source whose GTIDs before it the backup already holds but the newest such one. One LIST and,
 * in practice, one or two GETs, however long the history.
 */
export async function readBinlogIndexBack(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  covered: (record: BinlogRecord) => boolean,
): Promise<BinlogRecord[]> {
  const keys = await listChunks(client, bucket, location, source);
  const records = new Map<string, BinlogRecord>();
  for (const key of keys.reverse()) {
    const chunk = (await readChunk(client, bucket, key)).records;
    for (const record of chunk) records.set(record.file, record);
    const oldest = [...chunk].sort(bySequence)[0];
    if (oldest && covered(oldest)) break;
  }
  return [...records.values()].sort(bySequence);
}

/** Manifests of a source's prefix, by file, from a listing of its keys (names only). */
function manifestFiles(keys: readonly string[], prefix: string): string[] {
  return keys
    .map((key) => key.slice(prefix.length))
    .filter((name) => name.endsWith(".json") && !name.includes("/"))
    .map((name) => name.slice(0, -".json".length));
}

/** What one process knows of a source's index: which chunks S3 holds, and the content of those it read or wrote. */
export interface IndexState {
  readonly keys: Set<string>;
  readonly chunks: Map<string, BinlogIndexChunk>;
  /** ETags of the chunks it read or wrote. */
  readonly etags: Map<string, string>;
}

/**
 * What a push leaves on its host for the next one (DESIGN §4, state dir): the newest file it
 * knows S3 holds and indexes, and the ETag of the index chunk that says so. While that chunk is
 * unchanged, the next push reads it alone: no listing.
 */
export const TailHint = z.object({
  lastShipped: BinlogRecord,
  chunkKey: z.string(),
  etag: z.string(),
});
export type TailHint = z.infer<typeof TailHint>;

export interface ShippedTail {
  /** The newest file S3 holds a manifest of, or null when the source shipped nothing yet. */
  readonly lastShipped: BinlogRecord | null;
  /** For the push's own index update: no second listing or read of the newest chunk. */
  readonly index: IndexState;
  /** Whether the hint held: the tail came from one read of the chunk it names. */
  readonly fromHint: boolean;
  /** Why shipped files could not be indexed now (the next run tries again), and how many. */
  readonly indexFailure?: string;
  readonly unindexed?: number;
  /**
   * Shipped files the index could not take now: whoever indexes newer files adds these first, so
   * the index never records a file while an older shipped one is missing from it.
   */
  readonly pendingIndex?: readonly BinlogManifest[];
  /** The newest file the index records once this read is done (behind `lastShipped` after an index failure). */
  readonly lastIndexed: BinlogRecord | null;
}

/** The hint for the next push, when the index is known to record `lastShipped` under a known ETag. */
export function tailHint(
  location: ClusterLocation,
  source: string,
  lastShipped: BinlogRecord | null,
  index: IndexState,
): TailHint | undefined {
  if (!lastShipped) return undefined;
  const chunkKey = binlogIndexChunkKey(location, source, chunkOf(lastShipped.file));
  const etag = index.etags.get(chunkKey);
  const newest = index.chunks.get(chunkKey)?.records.at(-1);
  return etag && newest?.file === lastShipped.file ? { lastShipped, chunkKey, etag } : undefined;
}

/**
 * What binlog-push needs to know of S3 (the truth) to ship only what is new: the newest indexed
 * file, and manifests written after it that the index lacks, which are indexed now. A handful of
 * requests, whatever the history. A source with no index yet (shipped by an older agent) is
 * indexed from its manifests once.
 *
 * With the previous push's hint, and its chunk unchanged (same ETag, same newest file), that one
 * read is all: the previous push indexed everything it shipped before leaving the hint. A push
 * killed after shipping and before indexing left no new hint, so what it shipped is shipped
 * again (the same file, a new object and manifest) and indexed: nothing is lost, nothing listed.
 */
export async function readShippedTail(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  hint?: TailHint,
): Promise<ShippedTail> {
  if (hint) {
    const read = await readChunkTagged(client, bucket, hint.chunkKey).catch(() => undefined);
    const newest = read?.chunk.records.reduce<BinlogRecord | undefined>(
      (a, b) => (!a || binlogSequence(b.file) > binlogSequence(a.file) ? b : a),
      undefined,
    );
    if (read?.etag === hint.etag && newest?.file === hint.lastShipped.file) {
      return {
        lastShipped: newest,
        index: {
          keys: new Set([hint.chunkKey]),
          chunks: new Map([[hint.chunkKey, read.chunk]]),
          etags: new Map([[hint.chunkKey, read.etag]]),
        },
        fromHint: true,
        lastIndexed: newest,
      };
    }
  }
  const prefix = binlogsPrefix(location, source);
  const chunks = await listChunks(client, bucket, location, source);
  const index: IndexState = { keys: new Set(chunks), chunks: new Map(), etags: new Map() };
  const newestChunk = chunks.at(-1);
  if (newestChunk) {
    const read = await readChunkTagged(client, bucket, newestChunk);
    index.chunks.set(newestChunk, read.chunk);
    if (read.etag) index.etags.set(newestChunk, read.etag);
  }
  const indexed = newestChunk ? [...index.chunks.get(newestChunk)!.records].sort(bySequence) : [];
  const last = indexed.at(-1);
  const after = last ? binlogManifestKey(location, source, last.file) : undefined;
  const { keys: newer } = await listKeys(client, bucket, prefix, { startAfter: after });
  const unindexedFiles = manifestFiles(newer, prefix)
    .filter((file) => !last || binlogSequence(file) > binlogSequence(last.file))
    .sort((a, b) => binlogSequence(a) - binlogSequence(b));
  const unindexed: BinlogManifest[] = [];
  for (const file of unindexedFiles) {
    const key = binlogManifestKey(location, source, file);
    unindexed.push(parseBinlogManifest(await readText(client, bucket, key), `s3://${bucket}/${key}`));
  }
  // Indexed when it can be: a failed index write (S3 refusing it for a while) never stops the
  // shipping of the next files, which goes by the manifests; the next run indexes them all.
  const indexFailure =
    unindexed.length > 0
      ? await addToBinlogIndex(client, bucket, location, source, unindexed, index).then(
          () => undefined,
          (error: Error) => error.message,
        )
      : undefined;
  const newestUnindexed = unindexed.at(-1);
  return {
    lastShipped: newestUnindexed ? recordOf(newestUnindexed) : (last ?? null),
    index,
    fromHint: false,
    lastIndexed: indexFailure || !newestUnindexed ? (last ?? null) : recordOf(newestUnindexed),
    ...(indexFailure ? { indexFailure, unindexed: unindexed.length, pendingIndex: unindexed } : {}),
  };
}

/**
 * Adds shipped files to the index: one PUT per chunk they fall in, after a LIST and a GET of
 * that chunk unless the caller knows them already (a push, from its readShippedTail).
 */
export async function addToBinlogIndex(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  manifests: readonly BinlogManifest[],
  /** What the caller already knows of the index (from readShippedTail); it is kept up to date. */
  known?: IndexState,
): Promise<void> {
  try {
    const byChunk = new Map<number, BinlogManifest[]>();
    for (const manifest of manifests) {
      byChunk.set(chunkOf(manifest.file), [...(byChunk.get(chunkOf(manifest.file)) ?? []), manifest]);
    }
    // Which chunks exist comes from a listing: a host may list its cluster's prefix but not the
    // bucket, and S3 answers a GET of a missing key with 403 to such a caller, not 404.
    const state: IndexState = known ?? {
      keys: new Set(await listChunks(client, bucket, location, source)),
      chunks: new Map(),
      etags: new Map(),
    };
    for (const [chunk, added] of byChunk) {
      const key = binlogIndexChunkKey(location, source, chunk);
      const existing =
        state.chunks.get(key) ??
        (state.keys.has(key)
          ? await readChunk(client, bucket, key)
          : { formatVersion: 1 as const, source, records: [] });
      const records = new Map(existing.records.map((record) => [record.file, record]));
      for (const manifest of added) records.set(manifest.file, recordOf(manifest));
      const body: BinlogIndexChunk = {
        formatVersion: 1,
        source,
        records: [...records.values()].sort(bySequence),
      };
      const text = JSON.stringify(body);
      const put = await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: text,
          ContentType: "application/json",
          // Under Object Lock S3 refuses an upload without a checksum (sandbox/aws/s3-gate.ts).
          ChecksumSHA256: createHash("sha256").update(text).digest("base64"),
        }),
      );
      state.keys.add(key);
      state.chunks.set(key, body);
      if (put.ETag) state.etags.set(key, put.ETag);
      else state.etags.delete(key);
    }
  } catch (error) {
    const files = manifests.map((manifest) => manifest.file);
    throw new RewindError(
      ErrorNames.binlogIndex,
      `could not index ${files.length === 1 ? files[0] : `${files[0]} … ${files.at(-1)}`} of ${source} in s3://${bucket}/${binlogIndexPrefix(location, source)}: ${(error as Error).message}; the shipped files stay restorable through their manifests, and the next shipment indexes them`,
      undefined,
      { cause: error },
    );
  }
}

/**
 * Drops records whose manifest or object is gone from S3 (deleted by hand, or by retention after
 * the index was read): for `list`, which shows what S3 really holds. Lists names, reads nothing.
 */
export async function presentInS3(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  records: readonly BinlogRecord[],
): Promise<BinlogRecord[]> {
  const prefix = binlogsPrefix(location, source);
  const keys = new Set((await listKeys(client, bucket, prefix)).keys);
  return records.filter(
    (record) => keys.has(`${prefix}${record.file}.json`) && keys.has(`${prefix}${record.file}.zst.enc`),
  );
}
