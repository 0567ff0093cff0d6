import type { S3Client } from "@aws-sdk/client-s3";
import { type BinlogChunkManifest, type ChunkedRecord, isChunked } from "../binlog/chunk.js";
import type { BinlogManifest, BinlogRecord } from "../binlog/manifest.js";
import type { ClusterLocation } from "../layout.js";
import type { BackupManifest } from "../manifest.js";
import { chooseBackup, planRestore, type RestorePlan, type RestoreTarget } from "../restore-plan.js";
import { readChunkManifests } from "./binlog-chunks.js";
import { readBackups, readBinlogManifest, readSources } from "./catalog.js";

/** A file still being written, planned as the prefix its chunks hold, with every chunk's manifest. */
export type ChunkedBinlog = ChunkedRecord & { readonly chunkManifests: readonly BinlogChunkManifest[] };

/** What a restore downloads a planned binlog by: its file manifest, or its chunks' manifests. */
export type RestoreBinlog = BinlogManifest | ChunkedBinlog;

/**
 * Every source's records a plan may use (none for a backup target): the chosen backup's source
 * from the index chunk of its binlog file on, the other sources whole, each with its chunked tail.
 */
async function chainRecords(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
  backups: readonly BackupManifest[],
): Promise<BinlogRecord[]> {
  if (target.kind === "backup") return [];
  const { backup } = chooseBackup(target, backups);
  const sources = await readSources(client, bucket, location, {
    from: backup,
  });
  return [...sources.values()].flat();
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
  knownBackups?: readonly BackupManifest[],
): Promise<RestorePlan<BinlogRecord>> {
  const backups = knownBackups ?? (await readBackups(client, bucket, location)).backups;
  return planRestore(target, backups, await chainRecords(client, bucket, location, target, backups));
}

const keyOf = (record: BinlogRecord) => `${record.source}/${record.file}`;

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
): Promise<RestorePlan<RestoreBinlog>> {
  const { backups } = await readBackups(client, bucket, location);
  let records = await chainRecords(client, bucket, location, target, backups);
  const manifests = new Map<string, RestoreBinlog>();
  for (;;) {
    const plan = planRestore(target, backups, records);
    const lost = new Set<string>();
    for (const { manifest: record } of plan.binlogs) {
      if (manifests.has(keyOf(record))) continue;
      if (isChunked(record)) {
        const chunkManifests = await readChunkManifests(client, bucket, location, record).catch(
          () => undefined,
        );
        if (chunkManifests) manifests.set(keyOf(record), { ...record, chunkManifests });
        else lost.add(keyOf(record));
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
