import { z } from "zod";
import { EngineName } from "./engine.js";
import { ErrorNames, RewindError } from "./errors.js";
import { StreamBlocks } from "./stream-blocks.js";

/**
 * The backup manifest (DESIGN §3). It is written last: a backup without one is incomplete and
 * must never be restored or counted by retention.
 */
export const MANIFEST_FORMAT_VERSION = 1;

/** The kinds of backup (also what `backup --type` and the documents' Type parameter accept). */
export const BACKUP_TYPES = ["full", "incremental"] as const;
export const BackupType = z.enum(BACKUP_TYPES);
export type BackupType = z.infer<typeof BackupType>;

export const ENCRYPTION_SUITE = "ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY";

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a SHA-256 in lower-case hex");
const base64Sha256 = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, "a base64 SHA-256");

export const PartChecksum = z.object({
  partNumber: z.number().int().min(1).max(10_000),
  size: z.number().int().nonnegative(),
  /** base64 SHA-256 of the part, as sent to S3 in x-amz-checksum-sha256. */
  checksumSha256: base64Sha256,
});
export type PartChecksum = z.infer<typeof PartChecksum>;

export const SegmentRecord = z.object({
  index: z.number().int().nonnegative(),
  key: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: sha256Hex,
  partSize: z.number().int().positive(),
  parts: z.array(PartChecksum).min(1),
  /**
   * "single": stored with one PutObject (smaller than a part), so S3's checksum is the SHA-256 of
   * the whole object; absent: a multipart upload with a composite checksum.
   */
  upload: z.literal("single").optional(),
});
export type SegmentRecord = z.infer<typeof SegmentRecord>;

export const EncryptionRecord = z.object({
  suite: z.literal(ENCRYPTION_SUITE),
  frameLength: z.number().int().positive(),
  /** KMS key ARN in AWS; `raw-aes:<namespace>/<name>` for a local key file. */
  keyId: z.string().min(1),
  context: z.record(z.string(), z.string()),
});
export type EncryptionRecord = z.infer<typeof EncryptionRecord>;

/** How a shipped binlog (a whole file or a chunk) is stored: the fields its manifests share. */
export const StoredBinlogFields = {
  /** The stored object: compressed, encrypted, uploaded with part checksums. */
  stored: SegmentRecord,
  storedSha256: sha256Hex,
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  encryption: EncryptionRecord,
  shippedAt: z.iso.datetime(),
  agentVersion: z.string(),
};

export const BackupManifest = z.object({
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  cluster: z.string().min(1),
  backupId: z.string().min(1),
  type: BackupType,
  parentBackupId: z.string().nullable(),
  host: z.string().min(1),
  engine: z.object({ name: EngineName, version: z.string() }),
  tool: z.object({ name: z.string(), version: z.string() }),
  serverId: z.number().int().nonnegative(),
  /** MySQL's server_uuid; MariaDB has none. */
  serverUuid: z.string().nullable(),
  /** Names the server that wrote the binlogs (DESIGN §3). */
  binlogSource: z.string().min(1),
  startTime: z.iso.datetime(),
  endTime: z.iso.datetime(),
  binlog: z.object({ file: z.string(), position: z.number().int().nonnegative(), gtidSet: z.string() }),
  /**
   * The history the backed-up server was on (core/history.ts); absent in backups taken before
   * histories existed, which are on the initial one.
   */
  history: z.string().optional(),
  lsn: z.object({ fromLsn: z.string(), toLsn: z.string(), lastLsn: z.string() }),
  rawBytes: z.number().int().nonnegative(),
  storedBytes: z.number().int().nonnegative(),
  storedSha256: sha256Hex,
  segments: z.array(SegmentRecord).min(1),
  /**
   * The stored stream's blocks and which hold each file (core/stream-blocks.ts); absent in
   * backups stored as one stream (agents before it).
   */
  blocks: StreamBlocks.optional(),
  compression: z.object({ algorithm: z.literal("zstd"), level: z.number().int() }),
  encryption: EncryptionRecord,
  /** The server's option files as they were, for rebuilding a host; never auto.cnf. */
  myCnf: z.string(),
  /**
   * User tables (`db.table`) the backup holds, from the stream's own file entries
   * (core/xbstream's tablesInStream): a table restore refuses a table that neither this list nor
   * the binlogs up to the target name, before the backup is downloaded. Empty in backups taken
   * by agents that read it from information_schema as the backup account (which sees none).
   */
  tables: z.array(z.string()).optional(),
  agentVersion: z.string(),
});
export type BackupManifest = z.infer<typeof BackupManifest>;

/**
 * Parses a manifest read from S3 against its schema; a damaged one is a VerifyFailed that names
 * the object and the bad field.
 */
export function parseManifest<T extends z.ZodType>(
  schema: T,
  json: string,
  where: string,
  kind: string,
): z.infer<T> {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw new RewindError(
      ErrorNames.verify,
      `${where} is not JSON (${(error as Error).message}); the ${kind} is damaged`,
    );
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new RewindError(
      ErrorNames.verify,
      `${where} is not a valid ${kind}: ${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
  }
  return result.data;
}

export function parseBackupManifest(json: string, where: string): BackupManifest {
  return parseManifest(BackupManifest, json, where, "backup manifest");
}
