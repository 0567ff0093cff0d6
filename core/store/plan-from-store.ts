import type { S3Client } from "@aws-sdk/client-s3";
import { type ChunkedRecord, isChunked } from "../binlog/chunk.js";
import type { BinlogManifest, BinlogRecord } from "../binlog/manifest.js";
import { INITIAL_HISTORY } from "../history.js";
import type { ClusterLocation } from "../layout.js";
import type { BackupManifest } from "../manifest.js";
import {
  backupsOnHistory,
  chooseBackup,
  type HistoryChoice,
  planRestore,
  type RestorePlan,
  type RestoreTarget,
  restoresTo,
} from "../restore-plan.js";
import { readBackups, readBinlogManifest, readNewestBackups, readSources } from "./catalog.js";
import { readHistoryTree } from "./histories.js";

/** A file still being written, planned as the prefix its chain of chunks holds (their keys from the LIST). */
export type ChunkedBinlog = ChunkedRecord;

/** What a restore downloads a planned binlog by: its file manifest, or its chain of chunk objects. */
export type RestoreBinlog = BinlogManifest | ChunkedBinlog;

/**
 * Every source's records a plan may use (none for a backup target): the chosen backup's source
 * from the index chunk of its binlog file on, the other sources back to the backup's GTIDs, each
 * with its chunked tail. Once the cluster has branched, every source whole: which history a GTID
 * target is on, and where each history's part of a source begins, need all of them.
 */
async function chainRecords(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
  backups: readonly BackupManifest[],
  histories: HistoryChoice,
): Promise<BinlogRecord[]> {
  if (target.kind === "backup") return [];
  if (histories.tree.histories.length > 0) {
    return [...(await readSources(client, bucket, location)).values()].flat();
  }
  const { backup } = chooseBackup(target, backupsOnHistory(histories.tree, INITIAL_HISTORY, backups));
  const sources = await readSources(client, bucket, location, {
    from: backup,
  });
  return [...sources.values()].flat();
}

export async function historiesOf(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  history: string | undefined,
): Promise<HistoryChoice> {
  const tree = await readHistoryTree(client, bucket, location);
  return history === undefined ? { tree } : { tree, history };
}

/**
 * Plans a restore reading only what it needs: the backups, then each source's index and the
 * newest chunk of each file still being written.
 */
export async function planFromStore(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
  options: { readonly backups?: readonly BackupManifest[]; readonly history?: string } = {},
): Promise<RestorePlan<BinlogRecord>> {
  const backups = options.backups ?? (await readBackups(client, bucket, location)).backups;
  const histories = await historiesOf(client, bucket, location, options.history);
  return planRestore(
    target,
    backups,
    await chainRecords(client, bucket, location, target, backups, histories),
    histories,
  );
}

const keyOf = (record: BinlogRecord) => `${record.source}/${record.file}`;

/**
 * The backups a plan for `target` ("latest": the newest full backup) needs: newest first back to
 * a full one that serves it, and on until every incremental read has its parent read too (ids
 * sort by time, so a parent not read yet is older than everything read), so a plan's requests do
 * not grow with the backups kept; or all of them once the cluster has branched (which history
 * each is on decides which may serve).
 */
export async function backupsFor(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget | "latest",
  histories: HistoryChoice,
): Promise<BackupManifest[]> {
  if (histories.tree.histories.length > 0) return (await readBackups(client, bucket, location)).backups;
  return readNewestBackups(client, bucket, location, (newestFirst) => {
    const oldest = newestFirst.at(-1)!.backupId;
    return (
      newestFirst.some(
        (backup) => backup.type === "full" && (target === "latest" || restoresTo(target, backup)),
      ) && newestFirst.every((backup) => backup.type === "full" || (backup.parentBackupId ?? "") >= oldest)
    );
  });
}

/**
 * The plan with each binlog's manifest (a chunked file's: every chunk's), which a restore
 * downloads by. The manifests are the truth: a file the index lists but S3 no longer holds is a
 * gap, and the plan is made again without it (a target before it still plans; one past it is
 * refused naming it, unless another source holds its transactions).
 */
export async function planWithManifests(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
  history?: string,
): Promise<RestorePlan<RestoreBinlog>> {
  const histories = await historiesOf(client, bucket, location, history);
  const backups = await backupsFor(client, bucket, location, target, histories);
  let records = await chainRecords(client, bucket, location, target, backups, histories);
  const manifests = new Map<string, RestoreBinlog>();
  for (;;) {
    const plan = planRestore(target, backups, records, histories);
    const lost = new Set<string>();
    for (const { manifest: record } of plan.binlogs) {
      if (manifests.has(keyOf(record))) continue;
      if (isChunked(record)) {
        // The LIST that found it named every chunk object of its chain: nothing more to read.
        manifests.set(keyOf(record), record);
        continue;
      }
      const found = await readBinlogManifest(client, bucket, location, record.source, record.file);
      if (found) manifests.set(keyOf(record), found);
      else lost.add(keyOf(record));
    }
    if (lost.size === 0) {
      return {
        ...plan,
        binlogs: plan.binlogs.map((binlog) => ({
          ...binlog,
          manifest: manifests.get(keyOf(binlog.manifest))!,
        })),
      };
    }
    records = records.filter((record) => !lost.has(keyOf(record)));
  }
}
