import { z } from "zod";
import { EncryptionRecord, SegmentRecord } from "../manifest.js";

/**
 * The per-file binlog manifest (DESIGN §3), written after the object: a binlog without one was
 * never shipped completely.
 */
export const BINLOG_MANIFEST_FORMAT_VERSION = 1;

export const BinlogManifest = z.object({
  formatVersion: z.literal(BINLOG_MANIFEST_FORMAT_VERSION),
  cluster: z.string().min(1),
  source: z.string().min(1),
  file: z.string().min(1),
  /** The file the server wrote before this one; a different name in the previous manifest is a gap. */
  previousFile: z.string().nullable(),
  serverVersion: z.string(),
  /** The binlog as the server wrote it (with the in-use flag cleared). */
  size: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  firstEventTime: z.iso.datetime().nullable(),
  lastEventTime: z.iso.datetime().nullable(),
  /** GTIDs executed before this file, from its GTID_LIST / PREVIOUS_GTIDS event. */
  gtidsBefore: z.string(),
  firstGtid: z.string().nullable(),
  lastGtid: z.string().nullable(),
  transactions: z.number().int().nonnegative(),
  /** The stored object: compressed, encrypted, uploaded with part checksums. */
  stored: SegmentRecord,
  storedSha256: z.string().regex(/^[0-9a-f]{64}$/),
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  encryption: EncryptionRecord,
  shippedAt: z.iso.datetime(),
  agentVersion: z.string(),
});
export type BinlogManifest = z.infer<typeof BinlogManifest>;

export function parseBinlogManifest(json: string, where: string): BinlogManifest {
  const result = BinlogManifest.safeParse(JSON.parse(json));
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new Error(`${where} is not a valid binlog manifest: ${issue.path.join(".")}: ${issue.message}`);
  }
  return result.data;
}

/** Binlog files sort by their numeric suffix (`mariadb-bin.000123`). */
export function binlogSequence(file: string): number {
  const match = /\.(\d+)$/.exec(file);
  if (!match) throw new Error(`"${file}" is not a binary log file name (expected a numeric suffix)`);
  return Number(match[1]);
}
