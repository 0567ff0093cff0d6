import type { S3Client } from "@aws-sdk/client-s3";
import type { BinlogManifest, BinlogRecord } from "../binlog/manifest.js";
import type { ClusterLocation } from "../layout.js";
import type { BackupManifest } from "../manifest.js";
import { chooseBackup, planRestore, type RestorePlan, type RestoreTarget } from "../restore-plan.js";
import { readBinlogIndex } from "./binlog-index.js";
import { readBackups, readBinlogManifest } from "./catalog.js";

/** The chosen backup's source's records from the chunk of its binlog file on; none for a backup target. */
async function chainRecords(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
  backups: readonly BackupManifest[],
): Promise<BinlogRecord[]> {
  if (target.kind === "backup") return [];
  const { backup } = chooseBackup(target, backups);
  return readBinlogIndex(client, bucket, location, backup.binlogSource, backup.binlog.file);
}

/**
 * Plans a restore reading only what it needs, so its cost does not grow with history: the
 * backups, then the index of the chosen backup's source from the chunk of its binlog file on.
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

/**
 * The plan with each binlog's manifest, which a restore downloads by. The manifests are the
 * truth: a file the index lists but S3 no longer holds is a gap, and the plan is made again
 * without it (a target before it still plans; one past it is refused naming it).
 */
export async function planWithManifests(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  target: RestoreTarget,
): Promise<RestorePlan<BinlogManifest>> {
  const { backups } = await readBackups(client, bucket, location);
  let records = await chainRecords(client, bucket, location, target, backups);
  const manifests = new Map<string, BinlogManifest>();
  for (;;) {
    const plan = planRestore(target, backups, records);
    const lost = new Set<string>();
    for (const { manifest } of plan.binlogs) {
      if (manifests.has(manifest.file)) continue;
      const found = await readBinlogManifest(client, bucket, location, manifest.source, manifest.file);
      if (found) manifests.set(manifest.file, found);
      else lost.add(manifest.file);
    }
    if (lost.size === 0) {
      return {
        ...plan,
        binlogs: plan.binlogs.map((binlog) => ({ ...binlog, manifest: manifests.get(binlog.file)! })),
      };
    }
    records = records.filter((record) => !lost.has(record.file));
  }
}
