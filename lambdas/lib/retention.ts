import {
  DeleteObjectsCommand,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  type S3Client,
} from "@aws-sdk/client-s3";
import { parseBackupId } from "../../core/backup-id.js";
import { isChunked } from "../../core/binlog/chunk.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import {
  backupManifestKey,
  binlogChunksPrefix,
  binlogIndexChunkKey,
  binlogManifestKey,
  binlogObjectKey,
  type ClusterLocation,
} from "../../core/layout.js";
import { planRetention, type RetentionPolicy } from "../../core/retention.js";
import { chunkOf } from "../../core/store/binlog-index.js";
import { readCatalog } from "../../core/store/catalog.js";
import { readHistoryTree } from "../../core/store/histories.js";
import { listKeys } from "../../core/store/objects.js";

export interface RetentionReport {
  readonly cluster: string;
  readonly keptBackups: string[];
  readonly deletedBackups: string[];
  readonly deletedBinlogs: string[];
  /** Object versions deleted for good (every version of what went, by version id). */
  readonly deletedObjects: number;
  /** Objects Object Lock still protects: kept, and deleted by a later run. */
  readonly heldByLock: number;
  /** Backups that never completed (no manifest), removed once no agent can still be writing them. */
  readonly deletedIncomplete: string[];
  /** Why nothing was deleted, when deleting would have broken a rule. */
  readonly refused: string | null;
  readonly notes: string[];
}

/** Agent tasks time out after at most 48 hours (the SSM document's execution timeout). */
const INCOMPLETE_GRACE_MS = 48 * 3600 * 1000;

/**
 * Deletes objects for good: every version of them, by version id. The bucket is versioned (Object
 * Lock needs it), so a DELETE without a version id would only write a delete marker and keep the
 * bytes (S3 User Guide, "Deleting object versions from a versioning-enabled bucket"). A version
 * Object Lock still protects is refused by S3 for that object alone; it is left for a later run
 * (the lock covers what the PITR window needs, and lapses a day after) and counted, never an
 * error. Returns the versions deleted and the keys held by a lock.
 */
class VersionDeleter {
  deleted = 0;
  readonly held = new Set<string>();

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  /** Every version (and delete marker) under `prefix`, of the keys `only` names when given. */
  async versionsUnder(prefix: string, only?: ReadonlySet<string>): Promise<ObjectIdentifier[]> {
    const found: ObjectIdentifier[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectVersionsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          VersionIdMarker: versionIdMarker,
        }),
      );
      for (const entry of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (only && !only.has(entry.Key!)) continue;
        found.push({ Key: entry.Key!, VersionId: entry.VersionId! });
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    return found;
  }

  /** Deletes these versions; true when none was held back by Object Lock. */
  async delete(versions: readonly ObjectIdentifier[]): Promise<boolean> {
    let allGone = true;
    for (let start = 0; start < versions.length; start += 1000) {
      const batch = versions.slice(start, start + 1000);
      const result = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }),
      );
      const errors = result.Errors ?? [];
      const locked = errors.filter(
        (error) => error.Code === "AccessDenied" && /object lock/i.test(error.Message ?? ""),
      );
      const other = errors.filter((error) => !locked.includes(error));
      if (other.length > 0) {
        const first = other[0]!;
        throw new RewindError(
          ErrorNames.retentionFailed,
          `S3 refused to delete ${other.length} object versions, first ${first.Key} (${first.VersionId}): ${first.Code} ${first.Message}; the next run tries again`,
        );
      }
      for (const error of locked) this.held.add(error.Key!);
      this.deleted += batch.length - locked.length;
      if (locked.length > 0) allGone = false;
    }
    return allGone;
  }

  /** Every version of these keys (found under `prefix`). */
  async deleteKeys(prefix: string, keys: readonly string[]): Promise<boolean> {
    if (keys.length === 0) return true;
    return this.delete(await this.versionsUnder(prefix, new Set(keys)));
  }

  /** Every version of every key under `prefix`. */
  async deletePrefix(prefix: string): Promise<boolean> {
    return this.delete(await this.versionsUnder(prefix));
  }
}

/**
 * Applies the PITR-aware retention policy of core/retention.ts to one cluster. A backup loses its
 * manifest first, so an interrupted run leaves an incomplete backup (never restored, deleted on
 * the next run), not a complete-looking one with missing segments.
 */
export async function applyRetention(
  client: S3Client,
  bucket: string,
  cluster: string,
  policy: RetentionPolicy,
  now: Date,
): Promise<RetentionReport> {
  const location: ClusterLocation = { cluster };
  const catalog = await readCatalog(client, bucket, location);
  const tree = await readHistoryTree(client, bucket, location);
  const decision = planRetention(catalog.backups, catalog.binlogs, policy, now, tree);
  const report = {
    cluster,
    keptBackups: decision.keepBackups,
    refused: decision.refused,
    notes: decision.notes,
  };
  if (decision.refused) {
    return {
      ...report,
      deletedBackups: [],
      deletedBinlogs: [],
      deletedObjects: 0,
      heldByLock: 0,
      deletedIncomplete: [],
    };
  }
  const deleter = new VersionDeleter(client, bucket);
  const deletedBackups: string[] = [];
  for (const backupId of decision.deleteBackups) {
    const manifestKey = backupManifestKey(location, backupId);
    const backupPrefix = manifestKey.slice(0, manifestKey.lastIndexOf("/") + 1);
    // The manifest first: held by its lock, the backup stays whole and complete until a later run.
    if (!(await deleter.deleteKeys(manifestKey, [manifestKey]))) continue;
    await deleter.deletePrefix(backupPrefix);
    deletedBackups.push(backupId);
  }
  const deletedBinlogs: string[] = [];
  for (const sourceAndFile of new Set(decision.deleteBinlogs)) {
    const [source, file] = [
      sourceAndFile.slice(0, sourceAndFile.lastIndexOf("/")),
      sourceAndFile.slice(sourceAndFile.lastIndexOf("/") + 1),
    ];
    const record = catalog.binlogs.get(source)?.find((candidate) => candidate.file === file);
    let gone = true;
    if (record && !isChunked(record)) {
      const keys = [binlogManifestKey(location, source, file), binlogObjectKey(location, source, file)];
      gone = await deleter.deleteKeys(binlogManifestKey(location, source, file).replace(/json$/, ""), keys);
    }
    // Its chunks, whether it was only ever chunks (its host lost) or also shipped whole.
    gone = (await deleter.deletePrefix(binlogChunksPrefix(location, source, file))) && gone;
    if (gone) deletedBinlogs.push(sourceAndFile);
  }
  // Chunks of a file since shipped whole and indexed are superseded: they go once no plan made
  // meanwhile can still name them (a day) and Object Lock lets them.
  const graceMs = Math.max(1, policy.objectLockDays ?? 0) * 24 * 3600 * 1000;
  for (const [source, records] of catalog.binlogs) {
    const closed = new Map(
      records.filter((record) => !isChunked(record)).map((record) => [record.file, record]),
    );
    // The files that have chunks, one LIST entry each (a delimiter listing): not every chunk.
    const chunksPrefix = binlogChunksPrefix(location, source);
    const { prefixes } = await listKeys(client, bucket, chunksPrefix, { delimiter: "/" });
    for (const file of prefixes.map((prefix) => prefix.slice(chunksPrefix.length, -1))) {
      const record = closed.get(file);
      if (!record || now.getTime() - Date.parse(record.shippedAt) <= graceMs) continue;
      if (decision.deleteBinlogs.includes(`${source}/${file}`)) continue;
      await deleter.deletePrefix(binlogChunksPrefix(location, source, file));
    }
  }
  // Index chunks whose every file is gone go too; a chunk that keeps some files keeps the
  // records of its deleted ones (never reached: they precede every kept backup's file).
  const deleted = new Set(deletedBinlogs);
  for (const [source, records] of catalog.binlogs) {
    const chunks = [...new Set(records.map((record) => chunkOf(record.file)))].sort((a, b) => a - b);
    for (const chunk of chunks.slice(0, -1)) {
      const emptied = records
        .filter((record) => chunkOf(record.file) === chunk)
        .every((record) => deleted.has(`${source}/${record.file}`));
      if (!emptied) continue;
      const key = binlogIndexChunkKey(location, source, chunk);
      await deleter.deleteKeys(key, [key]);
    }
  }
  // Hosts may not delete: an interrupted backup's objects (no manifest, never used) are removed
  // here, once older than the longest an agent task may run, so a running backup is never touched.
  const deletedIncomplete: string[] = [];
  for (const prefix of catalog.incompleteBackups) {
    const backupId = prefix.slice(0, -1).split("/").at(-1)!;
    let startedAt: Date;
    try {
      startedAt = parseBackupId(backupId).startedAt;
    } catch {
      continue;
    }
    if (now.getTime() - startedAt.getTime() <= INCOMPLETE_GRACE_MS) continue;
    if (await deleter.deletePrefix(prefix)) deletedIncomplete.push(backupId);
  }
  const notes = [...report.notes];
  if (deleter.held.size > 0) {
    notes.push(
      `${deleter.held.size} object(s) are still under Object Lock and were kept; a later run deletes them once their retention lapses (first: ${[...deleter.held][0]})`,
    );
  }
  return {
    ...report,
    notes,
    deletedBackups,
    deletedBinlogs,
    deletedObjects: deleter.deleted,
    heldByLock: deleter.held.size,
    deletedIncomplete,
  };
}
