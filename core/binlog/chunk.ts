import { z } from "zod";
import { EngineName } from "../engine.js";
import { parseManifest, StoredBinlogFields } from "../manifest.js";
import type { BinlogRecord } from "./manifest.js";

/**
 * A chunk of a binlog the server is still writing (DESIGN §3): `binlog-stream` ships each run of
 * complete transactions as one object under `binlogs/<source>/chunks/<file>/<chunk>.zst.enc`,
 * followed by this manifest. Chunk 0 starts at the file's first byte (its header and format
 * description), each later chunk where the one before ended, and every chunk ends after a whole
 * transaction, so the chunks 0…k concatenated are a prefix of the file that replays as it is.
 * When the file closes it is shipped whole, with its file manifest, and its chunks are superseded.
 */
export const BINLOG_CHUNK_FORMAT_VERSION = 1;

export const BinlogChunkManifest = z.object({
  formatVersion: z.literal(BINLOG_CHUNK_FORMAT_VERSION),
  cluster: z.string().min(1),
  engine: EngineName,
  source: z.string().min(1),
  file: z.string().min(1),
  chunk: z.number().int().nonnegative(),
  /** The file the server wrote before this one, when it had one. */
  previousFile: z.string().nullable(),
  serverVersion: z.string(),
  /** The bytes of the file this chunk holds: [startOffset, endOffset). */
  startOffset: z.number().int().nonnegative(),
  endOffset: z.number().int().positive(),
  /** The SHA-256 of those bytes as the server wrote them (chunk 0 with the in-use flag cleared). */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
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
  ...StoredBinlogFields,
});
export type BinlogChunkManifest = z.infer<typeof BinlogChunkManifest>;

export function parseChunkManifest(json: string, where: string): BinlogChunkManifest {
  return parseManifest(BinlogChunkManifest, json, where, "binlog chunk manifest");
}

/**
 * The shipped prefix of a file still being written, as planning sees a file: a record that ends
 * at its newest contiguous chunk. `chunks` is how many chunks (0…chunks-1) make it up.
 */
export type ChunkedRecord = BinlogRecord & { readonly chunks: number };

export function isChunked(record: BinlogRecord): record is ChunkedRecord {
  return typeof (record as Partial<ChunkedRecord>).chunks === "number";
}

/** The record of a file's prefix shipped as chunks, from its newest contiguous chunk. */
export function chunkedRecord(newest: BinlogChunkManifest): ChunkedRecord {
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
    chunks: newest.chunk + 1,
  };
}
