import { createHash } from "node:crypto";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { restorableBackups } from "../../core/backup-chain.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { currentHistory, recordsOnHistory } from "../../core/history.js";
import { type ClusterLocation, restorePlanKey } from "../../core/layout.js";
import type { BackupManifest } from "../../core/manifest.js";
import { bySource, stitchChain } from "../../core/restorable-window.js";
import { backupsOnHistory, parseRestoreTarget, type RestoreTarget } from "../../core/restore-plan.js";
import { readSources } from "../../core/store/catalog.js";
import { backupsFor, historiesOf, planFromStore } from "../../core/store/plan-from-store.js";
import { describePlan, type PlannedRestore } from "../../core/store/planned-restore.js";
import type { RestoreInput } from "./inputs.js";

export type { PlannedRestore } from "../../core/store/planned-restore.js";

/**
 * The newest point the shipped binlogs reach from the newest restorable backup, as the GTID of its last
 * transaction: a time would include its whole second, whose end may not be shipped yet.
 */
export async function latestTarget(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  backups: readonly BackupManifest[],
  history?: string,
): Promise<{ target: RestoreTarget; history: string }> {
  const { tree } = await historiesOf(client, bucket, location, history);
  const on = history ?? currentHistory(tree);
  // The newest backup a restore can start from: a full one, or an incremental whose chain is complete.
  const newest = restorableBackups(backupsOnHistory(tree, on, backups)).usable.at(-1);
  if (!newest) {
    throw new RewindError(
      ErrorNames.planRefused,
      "there is no complete full backup to restore from; run the Backup state machine first",
    );
  }
  // Once the cluster has branched, every source: which part of each belongs to the history.
  const sources = await readSources(
    client,
    bucket,
    location,
    tree.histories.length > 0 ? {} : { from: newest },
  );
  const records = recordsOnHistory(tree, on, [...sources.values()].flat());
  const chain = stitchChain(newest, bySource(records)).links.map((link) => link.record);
  const last = chain.findLast((record) => record.lastGtid !== null);
  return {
    target: last ? { kind: "gtid", gtid: last.lastGtid! } : { kind: "backup", backupId: newest.backupId },
    // Planned on this history by name: after a roll-back in place its newest GTID may also be a
    // sequence number of the future it discarded.
    history: on,
  };
}

function targetOf(input: RestoreInput): RestoreTarget {
  if (input.backupId) return { kind: "backup", backupId: input.backupId };
  return parseRestoreTarget(input.gtid ?? input.pointInTime!);
}

/**
 * Plans a restore from what S3 holds (the newest full backup before the target and the binlogs
 * from its exact position), refusing with the reason when the target is outside the window or
 * past a gap, and stores the plan under `restores/<restoreId>/plan.json` for the agent.
 */
export async function planClusterRestore(
  client: S3Client,
  bucket: string,
  input: RestoreInput,
  restoreId: string,
): Promise<PlannedRestore> {
  const location: ClusterLocation = { cluster: input.cluster };
  // The newest backup that can serve the target (newest first, one manifest as a rule), then the
  // index of its source from its file on: the requests grow neither with the binlog history nor
  // with the backups kept.
  const requested = input.latest ? undefined : targetOf(input);
  const backups = await backupsFor(
    client,
    bucket,
    location,
    requested ?? "latest",
    await historiesOf(client, bucket, location, input.history),
  );
  const latest = input.latest
    ? await latestTarget(client, bucket, location, backups, input.history)
    : undefined;
  const target = latest?.target ?? requested!;
  const history = latest?.history ?? input.history;
  const plan = await planFromStore(client, bucket, location, target, {
    backups,
    ...(history ? { history } : {}),
  });
  const key = restorePlanKey(location, restoreId);
  const planned: PlannedRestore = {
    restoreId,
    cluster: input.cluster,
    targetInstanceId: input.targetInstanceId,
    target: plan.target,
    ...describePlan(plan),
    binlogSource: plan.backup.binlogSource,
    planUri: `s3://${bucket}/${key}`,
    mode: input.mode,
    // A table restore works in a scratch datadir of its own under the agent's workDir.
    datadir: input.mode === "tables" ? "" : input.datadir,
    replicaOf: input.mode === "replica" ? input.primary! : "",
    promote: input.promote,
    dryRun: input.dryRun,
    ...(input.mode === "tables"
      ? { tables: { tables: input.tables!, ...(input.as ? { as: input.as } : {}), replace: input.replace } }
      : {}),
    ...(input.mode === "tables" || input.mode === "scratch"
      ? {
          // Every link of a chain unpacked at once (the deltas until applied), and the binlogs.
          scratchBytes:
            plan.chain.reduce((sum, link) => sum + link.rawBytes, 0) +
            plan.binlogs.reduce((sum, binlog) => sum + binlog.manifest.size, 0),
        }
      : {}),
  };
  const body = JSON.stringify({ ...planned, plannedAt: new Date().toISOString() }, null, 2);
  await client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: "application/json",
      // Object Lock: S3 refuses an upload without a checksum (sandbox/aws/s3-gate.ts).
      ChecksumSHA256: createHash("sha256").update(body).digest("base64"),
    }),
  );
  return planned;
}
