import { z } from "zod";
import { EngineName } from "../engine.js";
import { ErrorNames, RewindError } from "../errors.js";
import { type GtidSet, gtidModel } from "../gtid/index.js";
import { parseManifest, StoredBinlogFields } from "../manifest.js";

/**
 * The per-file binlog manifest (DESIGN §3), written after the object: a binlog without one was
 * never shipped completely.
 */
export const BINLOG_MANIFEST_FORMAT_VERSION = 2;

const BinlogManifestFields = z.object({
  formatVersion: z.literal(BINLOG_MANIFEST_FORMAT_VERSION),
  cluster: z.string().min(1),
  /** Chooses the GTID syntax of every GTID field below. */
  engine: EngineName,
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
  /** The GTIDs this file adds to `gtidsBefore` (MariaDB: the last GTID of each domain it touches). */
  gtidsAdded: z.string(),
  /** MySQL: the last transaction's immediate_commit_timestamp, to the microsecond; null on MariaDB. */
  lastCommitTime: z.iso.datetime().nullable(),
  transactions: z.number().int().nonnegative(),
  /**
   * The server crashed with this file open (no rotate event): it was shipped up to its last
   * complete transaction (`size` bytes), which is what the server's crash recovery kept, of a
   * file `fileBytes` long on disk. Absent for a file the server closed.
   */
  crashRecovered: z.object({ fileBytes: z.number().int().positive() }).optional(),
  ...StoredBinlogFields,
});

/**
 * Format 1 (MariaDB only in practice) had no engine and no GTID set of its own: the engine is
 * read from the server version the file recorded, and a MariaDB file's last GTID is what it adds.
 */
function upgradeFormat1(data: unknown): unknown {
  if (typeof data !== "object" || data === null || (data as { formatVersion?: unknown }).formatVersion !== 1)
    return data;
  const old = data as { serverVersion?: string; lastGtid?: string | null };
  const engine = /mariadb/i.test(old.serverVersion ?? "") ? "mariadb" : "mysql";
  return {
    ...data,
    formatVersion: BINLOG_MANIFEST_FORMAT_VERSION,
    engine,
    gtidsAdded: engine === "mariadb" ? (old.lastGtid ?? "") : "",
    lastCommitTime: null,
  };
}

export const BinlogManifest = z.preprocess(upgradeFormat1, BinlogManifestFields);
export type BinlogManifest = z.infer<typeof BinlogManifestFields>;

/**
 * What planning, the restorable window, gap detection and retention read of a shipped binlog:
 * a manifest without its storage details. The per-source index holds these (core/store/binlog-index).
 */
export const BinlogRecord = BinlogManifestFields.pick({
  engine: true,
  source: true,
  file: true,
  previousFile: true,
  size: true,
  sha256: true,
  storedSha256: true,
  firstEventTime: true,
  lastEventTime: true,
  lastCommitTime: true,
  gtidsBefore: true,
  gtidsAdded: true,
  firstGtid: true,
  lastGtid: true,
  transactions: true,
  shippedAt: true,
});
export type BinlogRecord = z.infer<typeof BinlogRecord>;

export function recordOf(manifest: BinlogManifest): BinlogRecord {
  return BinlogRecord.parse(manifest);
}

export function parseBinlogManifest(json: string, where: string): BinlogManifest {
  return parseManifest(BinlogManifest, json, where, "binlog manifest");
}

/** The GTIDs executed once every transaction of `manifest` is applied. */
export function gtidsAfter(manifest: BinlogRecord): GtidSet {
  const gtids = gtidModel(manifest.engine);
  return gtids.parseSet(manifest.gtidsBefore).union(gtids.parseSet(manifest.gtidsAdded));
}

/** Binlog files sort by their numeric suffix (`mariadb-bin.000123`). */
export function binlogSequence(file: string): number {
  const match = /\.(\d+)$/.exec(file);
  if (!match)
    throw new RewindError(
      ErrorNames.binlogInvalid,
      `"${file}" is not a binary log file name (expected a numeric suffix such as binlog.000042)`,
    );
  return Number(match[1]);
}
