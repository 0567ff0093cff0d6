import { z } from "zod";
import { EngineName } from "../engine.js";
import { EncryptionRecord, parseManifest } from "../manifest.js";
import type { BinlogRecord } from "./manifest.js";

/**
 * A chunk of a binlog the server is still writing (docs/ARCHITECTURE.md §3): `binlog-stream`
 * ships each run of complete transactions as ONE object,
 * `binlogs/<source>/chunks/<file>/<startOffset>-<endOffset>.chunk`, that carries its own manifest
 * (the header below) in front of the compressed, encrypted bytes. Chunk 0 starts at the file's
 * first byte (its header and format description), each later chunk where the one before ended,
 * and every chunk ends after a whole transaction, so the chunks that follow one another from
 * offset 0 are a prefix of the file that replays as it is. Their byte ranges are in their keys, so
 * one LIST says which chunks a file has and whether they follow one another; the newest one's
 * header says what the whole prefix holds (its GTIDs, times and transaction count are the file's
 * up to its end). Planning reads that one header per file, however long the file stayed open.
 * When the file closes it is shipped whole, with its file manifest, and its chunks are superseded.
 *
 * Format 1 (a `<NNNNNN>.zst.enc` object and a `<NNNNNN>.json` manifest a chunk) is no longer read.
 */
export const BINLOG_CHUNK_FORMAT_VERSION = 2;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const BinlogChunkManifest = z.object({
  formatVersion: z.literal(BINLOG_CHUNK_FORMAT_VERSION),
  cluster: z.string().min(1),
  engine: EngineName,
  source: z.string().min(1),
  file: z.string().min(1),
  /** Its place among the file's chunks: 0 for the one at offset 0. */
  chunk: z.number().int().nonnegative(),
  /** The file the server wrote before this one, when it had one. */
  previousFile: z.string().nullable(),
  serverVersion: z.string(),
  /** The bytes of the file this chunk holds: [startOffset, endOffset), as its key says. */
  startOffset: z.number().int().nonnegative(),
  endOffset: z.number().int().positive(),
  /** The SHA-256 of those bytes as the server wrote them (chunk 0 with the in-use flag cleared). */
  sha256: sha256Hex,
  /** GTIDs executed before the file (its GTID_LIST / PREVIOUS_GTIDS event). */
  fileGtidsBefore: z.string(),
  /** What the file adds to `fileGtidsBefore` from its start up to `endOffset`. */
  gtidsAdded: z.string(),
  /** The file's first transaction; the last one up to `endOffset`. */
  firstGtid: z.string().nullable(),
  lastGtid: z.string().nullable(),
  /** The chunk's own first GTID: a chunk starts with a whole transaction. */
  chunkFirstGtid: z.string().nullable(),
  firstEventTime: z.iso.datetime().nullable(),
  lastEventTime: z.iso.datetime().nullable(),
  lastCommitTime: z.iso.datetime().nullable(),
  /** Transactions in the file up to `endOffset`, and in this chunk. */
  transactions: z.number().int().nonnegative(),
  chunkTransactions: z.number().int().nonnegative(),
  /** The stored payload after the header: zstd, then the Encryption SDK. */
  storedBytes: z.number().int().positive(),
  storedSha256: sha256Hex,
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  /** Context `{cluster, source, file}`: one data key serves a file's chunks (cached an hour). */
  encryption: EncryptionRecord,
  shippedAt: z.iso.datetime(),
  agentVersion: z.string(),
});
export type BinlogChunkManifest = z.infer<typeof BinlogChunkManifest>;

export function parseChunkManifest(json: string, where: string): BinlogChunkManifest {
  return parseManifest(BinlogChunkManifest, json, where, "binlog chunk header");
}

/** The object's first bytes: "RWCHUNK2", then the header's length (uint32 big-endian), then the header. */
const MAGIC = Buffer.from("RWCHUNK2", "latin1");
export const CHUNK_PREAMBLE_BYTES = MAGIC.length + 4;
/** What a reader fetches first to find the header: enough for any header but a huge GTID set. */
export const CHUNK_HEADER_PROBE_BYTES = 64 * 1024;

/** One chunk object: its header, then the stored payload. */
export function encodeChunkObject(manifest: BinlogChunkManifest, payload: Buffer): Buffer {
  const header = Buffer.from(JSON.stringify(manifest), "utf8");
  const preamble = Buffer.alloc(CHUNK_PREAMBLE_BYTES);
  MAGIC.copy(preamble, 0);
  preamble.writeUInt32BE(header.length, MAGIC.length);
  return Buffer.concat([preamble, header, payload]);
}

/**
 * The header's length from an object's first bytes; throws naming `where` when they are not a
 * chunk's.
 */
export function chunkHeaderLength(start: Buffer, where: string): number {
  if (start.length < CHUNK_PREAMBLE_BYTES || !start.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error(`${where} is not a Rewind binlog chunk (format ${BINLOG_CHUNK_FORMAT_VERSION})`);
  }
  return start.readUInt32BE(MAGIC.length);
}

/** A whole chunk object (or its first bytes, when `payload` is not needed), checked against its key. */
export function decodeChunkObject(
  object: Buffer,
  where: string,
  expected?: ChunkObject,
): { manifest: BinlogChunkManifest; payload: Buffer } {
  const length = chunkHeaderLength(object, where);
  const end = CHUNK_PREAMBLE_BYTES + length;
  if (object.length < end) throw new Error(`${where} ends inside its header`);
  const manifest = parseChunkManifest(object.subarray(CHUNK_PREAMBLE_BYTES, end).toString("utf8"), where);
  if (expected && (manifest.startOffset !== expected.start || manifest.endOffset !== expected.end)) {
    throw new Error(
      `${where} holds bytes ${manifest.startOffset}-${manifest.endOffset}, its key says ${expected.start}-${expected.end}`,
    );
  }
  return { manifest, payload: object.subarray(end) };
}

/** A chunk object as a LIST shows it: its key, byte range and size. */
export interface ChunkObject {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly size: number;
}

/** The chunk key's name within its file's prefix: the byte range, zero-padded so names sort by offset. */
export function chunkObjectName(start: number, end: number): string {
  return `${String(start).padStart(12, "0")}-${String(end).padStart(12, "0")}.chunk`;
}

export const CHUNK_KEY = /\/chunks\/([^/]+)\/(\d{12})-(\d{12})\.chunk$/;

/**
 * A file's chunks as one LIST shows them: `chain`, the chunks that follow one another from offset
 * 0 (where two start at the same byte, as after a streamer crashed mid-upload and shipped again,
 * the longer goes on), and `beyond`, those past a missing range, which cannot be replayed without it.
 */
export function chainChunks(objects: readonly ChunkObject[]): {
  chain: ChunkObject[];
  beyond: ChunkObject[];
} {
  const byStart = new Map<number, ChunkObject>();
  for (const object of objects) {
    const known = byStart.get(object.start);
    if (!known || object.end > known.end) byStart.set(object.start, object);
  }
  const chain: ChunkObject[] = [];
  let at = 0;
  for (let next = byStart.get(at); next; next = byStart.get(at)) {
    chain.push(next);
    at = next.end;
  }
  const beyond = objects
    .filter((object) => object.start > at)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  return { chain, beyond };
}

/**
 * The shipped prefix of a file still being written, as planning sees a file: a record that ends
 * at its newest chunk of the chain, with every chunk object of that chain (from the LIST).
 */
export type ChunkedRecord = BinlogRecord & {
  readonly chunks: number;
  readonly chunkObjects: readonly ChunkObject[];
};

export function isChunked(record: BinlogRecord): record is ChunkedRecord {
  return typeof (record as Partial<ChunkedRecord>).chunks === "number";
}

/** The record of a file's prefix shipped as chunks: from its newest chunk's header and the chain. */
export function chunkedRecord(newest: BinlogChunkManifest, chain: readonly ChunkObject[]): ChunkedRecord {
  return {
    engine: newest.engine,
    source: newest.source,
    file: newest.file,
    previousFile: newest.previousFile,
    size: newest.endOffset,
    sha256: newest.sha256,
    storedSha256: newest.storedSha256,
    firstEventTime: newest.firstEventTime,
    lastEventTime: newest.lastEventTime,
    lastCommitTime: newest.lastCommitTime,
    gtidsBefore: newest.fileGtidsBefore,
    gtidsAdded: newest.gtidsAdded,
    firstGtid: newest.firstGtid,
    lastGtid: newest.lastGtid,
    transactions: newest.transactions,
    shippedAt: newest.shippedAt,
    chunks: chain.length,
    chunkObjects: chain,
  };
}
