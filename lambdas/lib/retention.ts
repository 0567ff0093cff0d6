import { DeleteObjectsCommand, type S3Client } from "@aws-sdk/client-s3";
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
import { listChunks } from "../../core/store/binlog-chunks.js";
import { chunkOf } from "../../core/store/binlog-index.js";
import { readCatalog } from "../../core/store/catalog.js";
import { readHistoryTree } from "../../core/store/histories.js";
import { listKeys } from "../../core/store/objects.js";

export interface RetentionReport {
  readonly cluster: string;
  readonly keptBackups: string[];
  readonly deletedBackups: string[];
  readonly deletedBinlogs: string[];
  readonly deletedObjects: number;
  /** Backups that never completed (no manifest), removed once no agent can still be writing them. */
  readonly deletedIncomplete: string[];
  /** Why nothing was deleted, when deleting would have broken a rule. */
  readonly refused: string | null;
  readonly notes: string[];
}

/** Agent tasks time out after at most 48 hours (the SSM document's execution timeout). */
const INCOMPLETE_GRACE_MS = 48 * 3600 * 1000;

async function deleteKeys(client: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  for (let start = 0; start < keys.length; start += 1000) {
    const batch = keys.slice(start, start + 1000);
    const result = await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    if (result.Errors && result.Errors.length > 0) {
      const first = result.Errors[0]!;
      throw new RewindError(
        ErrorNames.retentionFailed,
        `S3 refused to delete ${result.Errors.length} objects, first ${first.Key}: ${first.Code} ${first.Message}; the next run tries again`,
      );
    }
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
  prefix: string | undefined,
  cluster: string,
  policy: RetentionPolicy,
  now: Date,
): Promise<RetentionReport> {
  const location: ClusterLocation = { prefix, cluster };
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
    return { ...report, deletedBackups: [], deletedBinlogs: [], deletedObjects: 0, deletedIncomplete: [] };
  }
  let deletedObjects = 0;
  for (const backupId of decision.deleteBackups) {
    const manifest = catalog.backups.find((backup) => backup.backupId === backupId)!;
    await deleteKeys(client, bucket, [backupManifestKey(location, backupId)]);
    await deleteKeys(
      client,
      bucket,
      manifest.segments.map((segment) => segment.key),
    );
    deletedObjects += 1 + manifest.segments.length;
  }
  const binlogKeys: string[] = [];
  for (const sourceAndFile of new Set(decision.deleteBinlogs)) {
    const [source, file] = [
      sourceAndFile.slice(0, sourceAndFile.lastIndexOf("/")),
      sourceAndFile.slice(sourceAndFile.lastIndexOf("/") + 1),
    ];
    const record = catalog.binlogs.get(source)?.find((candidate) => candidate.file === file);
    if (record && !isChunked(record)) {
      binlogKeys.push(binlogManifestKey(location, source, file), binlogObjectKey(location, source, file));
    }
    // Its chunks, whether it was only ever chunks (its host lost) or also shipped whole.
    binlogKeys.push(...(await listKeys(client, bucket, binlogChunksPrefix(location, source, file))).keys);
  }
  // Chunks of a file since shipped whole and indexed are superseded: they go once no plan made
  // meanwhile can still name them (a day) and Object Lock lets them.
  const graceMs = Math.max(1, policy.objectLockDays ?? 0) * 24 * 3600 * 1000;
  for (const [source, records] of catalog.binlogs) {
    const closed = new Map(
      records.filter((record) => !isChunked(record)).map((record) => [record.file, record]),
    );
    for (const { file } of await listChunks(client, bucket, location, source)) {
      const record = closed.get(file);
      if (!record || now.getTime() - Date.parse(record.shippedAt) <= graceMs) continue;
      if (decision.deleteBinlogs.includes(`${source}/${file}`)) continue;
      binlogKeys.push(...(await listKeys(client, bucket, binlogChunksPrefix(location, source, file))).keys);
    }
  }
  await deleteKeys(client, bucket, binlogKeys);
  deletedObjects += binlogKeys.length;
  // Index chunks whose every file is gone go too; a chunk that keeps some files keeps the
  // records of its deleted ones (never reached: they precede every kept backup's file).
  const deleted = new Set(decision.deleteBinlogs);
  const emptiedChunks = [...catalog.binlogs].flatMap(([source, records]) => {
    const chunks = [...new Set(records.map((record) => chunkOf(record.file)))].sort((a, b) => a - b);
    return chunks
      .slice(0, -1)
      .filter((chunk) =>
        records
          .filter((record) => chunkOf(record.file) === chunk)
          .every((record) => deleted.has(`${source}/${record.file}`)),
      )
      .map((chunk) => binlogIndexChunkKey(location, source, chunk));
  });
  await deleteKeys(client, bucket, emptiedChunks);
  deletedObjects += emptiedChunks.length;
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
    const { keys } = await listKeys(client, bucket, prefix);
    await deleteKeys(client, bucket, keys);
    deletedObjects += keys.length;
    deletedIncomplete.push(backupId);
  }
  return {
    ...report,
    deletedBackups: decision.deleteBackups,
    deletedBinlogs: decision.deleteBinlogs,
    deletedObjects,
    deletedIncomplete,
  };
}
