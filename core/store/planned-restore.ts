import type { S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";
import { byBackupId, chainOf } from "../backup-chain.js";
import { isChunked } from "../binlog/chunk.js";
import { ErrorNames, RewindError } from "../errors.js";
import { HISTORY_ID, INITIAL_HISTORY } from "../history.js";
import { binlogManifestKey, type ClusterLocation } from "../layout.js";
import type { BackupManifest } from "../manifest.js";
import { linkGap } from "../restorable-window.js";
import type { RestorePlan, RestoreTarget } from "../restore-plan.js";
import { readBackupManifest } from "./backup-manifest.js";
import { readPlannedChunks } from "./binlog-chunks.js";
import { readBinlogManifest } from "./catalog.js";
import type { ChunkedBinlog, RestoreBinlog } from "./plan-from-store.js";

/**
 * The plan plan-restore writes to `restores/<id>/plan.json` and Verify checks: it names the exact
 * objects, down to the hashes of what was verified, so the agent restores what was checked or
 * nothing (plan once).
 */
const RestoreTargetSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("time"), time: z.string() }),
  z.object({ kind: z.literal("gtid"), gtid: z.string() }),
  z.object({ kind: z.literal("backup"), backupId: z.string() }),
]);

export const PlannedBinlog = z.object({
  source: z.string(),
  file: z.string(),
  /** null: found by GTID in the file, where the chain switches to this source. */
  startPosition: z.number().int().positive().nullable(),
  /** The binlog as the server wrote it, and its stored object: what Verify checked (a chunked file: its last chunk). */
  sha256: z.string(),
  storedSha256: z.string(),
  /** A file still being written: replayed from its chunks 0…chunks-1. */
  chunks: z.number().int().positive().optional(),
  /** An ancestor history's file, cut at the branch point: replay stops where this GTID set ends. */
  stopAt: z.string().optional(),
});
export type PlannedBinlog = z.infer<typeof PlannedBinlog>;

/** Mode tables: what the agent on the primary copies into its live server. */
export const PlannedTables = z.object({
  tables: z.array(z.string()).min(1),
  as: z.string().optional(),
  replace: z.boolean(),
});

/**
 * How the plan is restored, the one source of truth for the agent (`restore --plan`): the
 * state machine sends the plan and nothing else about it.
 */
export const PlannedRestoreHow = z.object({
  mode: z.enum(["replace", "replica", "scratch", "tables"]),
  /** Empty for mode tables (a scratch datadir of its own under the agent's workDir). */
  datadir: z.string(),
  /** `host:port` of the primary (mode replica), else empty. */
  replicaOf: z.string(),
  /** Make the restored server the writable primary, beginning a history (mode replace). */
  promote: z.boolean().default(false),
  tables: PlannedTables.optional(),
});
export type PlannedRestoreHow = z.infer<typeof PlannedRestoreHow>;

export const StoredRestorePlan = z.object({
  /** The restore's id (the execution's name): its report goes beside the plan. Absent in hand-written plans. */
  restoreId: z.string().optional(),
  cluster: z.string(),
  target: RestoreTargetSchema,
  backupId: z.string(),
  backupStoredSha256: z.string(),
  /**
   * An incremental backup's chain before it, oldest (the full backup) first, each as verified;
   * absent for a full backup.
   */
  chain: z.array(z.object({ backupId: z.string(), storedSha256: z.string() })).optional(),
  /** The history the target resolved on (core/history); absent in plans made before histories. */
  history: z.string().regex(HISTORY_ID).optional(),
  binlogs: z.array(PlannedBinlog),
  /** How to restore it; absent in plans made by hand (flags say). */
  ...PlannedRestoreHow.partial().shape,
});
export type StoredRestorePlan = z.infer<typeof StoredRestorePlan>;

/**
 * What plan-restore writes to `restores/<id>/plan.json` and returns to the Restore state machine
 * (small: no manifests), with how to restore it in full.
 */
export const PlannedRestore = StoredRestorePlan.extend({
  ...PlannedRestoreHow.shape,
  restoreId: z.string(),
  targetInstanceId: z.string(),
  binlogSource: z.string(),
  /** The plan the agent reads: `restore --plan <planUri>`. */
  planUri: z.string(),
  dryRun: z.boolean(),
  /** The space a scratch restore takes on the host (mode scratch and tables): the backup and the binlogs, unpacked. */
  scratchBytes: z.number().optional(),
});
export type PlannedRestore = z.infer<typeof PlannedRestore>;

/** What a plan records of the backup and binlogs it chose. */
export function describePlan(
  plan: RestorePlan,
): Pick<StoredRestorePlan, "backupId" | "backupStoredSha256" | "chain" | "history" | "binlogs"> {
  const before = plan.chain.slice(0, -1);
  return {
    backupId: plan.backup.backupId,
    backupStoredSha256: plan.backup.storedSha256,
    ...(before.length > 0
      ? { chain: before.map((link) => ({ backupId: link.backupId, storedSha256: link.storedSha256 })) }
      : {}),
    history: plan.history,
    binlogs: plan.binlogs.map(({ manifest, startPosition, stopAt }) => ({
      source: manifest.source,
      file: manifest.file,
      startPosition,
      sha256: manifest.sha256,
      storedSha256: manifest.storedSha256,
      ...(isChunked(manifest) ? { chunks: manifest.chunks } : {}),
      ...(stopAt ? { stopAt } : {}),
    })),
  };
}

function changed(restoreOf: string, difference: string): RewindError {
  return new RewindError(
    ErrorNames.planRefused,
    `S3 no longer holds what the plan for ${restoreOf} was verified against: ${difference}. Nothing was restored; plan the restore again`,
  );
}

/**
 * Reads exactly the manifests the plan names (a bounded number of requests, however long the
 * history) and refuses, naming the difference, when any is gone or is not the one verified.
 */
export async function loadPlannedRestore(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  stored: StoredRestorePlan,
): Promise<RestorePlan<RestoreBinlog>> {
  if (stored.cluster !== location.cluster) {
    throw changed(
      stored.cluster,
      `the plan is for cluster ${stored.cluster}, this host belongs to ${location.cluster}`,
    );
  }
  const restoreOf = `${stored.cluster} to ${describeTarget(stored.target)}`;
  const backup = await readBackupManifest(client, bucket, location, stored.backupId).catch((error: Error) => {
    throw changed(restoreOf, error.message);
  });
  if (backup.storedSha256 !== stored.backupStoredSha256) {
    throw changed(
      restoreOf,
      `backup ${stored.backupId} now has stored SHA-256 ${backup.storedSha256}, the plan verified ${stored.backupStoredSha256}`,
    );
  }
  const chain: BackupManifest[] = [];
  for (const link of stored.chain ?? []) {
    const manifest = await readBackupManifest(client, bucket, location, link.backupId).catch(
      (error: Error) => {
        throw changed(
          restoreOf,
          `backup ${link.backupId}, a link of ${stored.backupId}'s chain: ${error.message}`,
        );
      },
    );
    if (manifest.storedSha256 !== link.storedSha256) {
      throw changed(
        restoreOf,
        `backup ${link.backupId} (a link of ${stored.backupId}'s chain) now has stored SHA-256 ${manifest.storedSha256}, the plan verified ${link.storedSha256}`,
      );
    }
    chain.push(manifest);
  }
  chain.push(backup);
  // The backup's chain resolved among exactly the links the plan names, and nothing else.
  const resolved = chainOf(backup, byBackupId(chain));
  if (!resolved.complete) throw changed(restoreOf, resolved.reason);
  if (resolved.links.length !== chain.length) {
    throw changed(
      restoreOf,
      `the chain of ${stored.backupId} is ${resolved.links.map((link) => link.backupId).join(" → ")}, not the ${chain.length} backups the plan names`,
    );
  }
  const binlogs: RestorePlan<RestoreBinlog>["binlogs"] = [];
  for (const planned of stored.binlogs) {
    const manifest = planned.chunks
      ? await loadChunks(client, bucket, location, planned, (difference) => changed(restoreOf, difference))
      : await readBinlogManifest(client, bucket, location, planned.source, planned.file);
    const where = `s3://${bucket}/${binlogManifestKey(location, planned.source, planned.file)}`;
    if (!manifest) throw changed(restoreOf, `binlog manifest ${where} is gone`);
    if (manifest.sha256 !== planned.sha256 || manifest.storedSha256 !== planned.storedSha256) {
      throw changed(
        restoreOf,
        `binlog ${planned.source}/${planned.file} is not the one verified (${where} changed)`,
      );
    }
    binlogs.push({
      file: planned.file,
      startPosition: planned.startPosition,
      stopAt: planned.stopAt ?? null,
      manifest,
    });
  }
  const first = binlogs[0];
  if (
    first &&
    first.manifest.source === backup.binlogSource &&
    first.file === backup.binlog.file &&
    first.startPosition !== backup.binlog.position
  ) {
    throw changed(
      restoreOf,
      `the plan starts replay at ${first.file}:${first.startPosition}, but backup ${backup.backupId} ends at ${backup.binlog.file}:${backup.binlog.position}`,
    );
  }
  const gap = linkGap(
    backup,
    binlogs.map((binlog) =>
      binlog.stopAt ? { ...binlog.manifest, stopAt: binlog.stopAt } : binlog.manifest,
    ),
  );
  if (gap) throw changed(restoreOf, `the planned binlogs break after ${gap.after}: ${gap.reason}`);
  return {
    target: stored.target as RestoreTarget,
    backup,
    chain,
    history: stored.history ?? INITIAL_HISTORY,
    binlogs,
  };
}

/** A planned chunked file: its chain of chunks, the newest of which the plan verified. */
async function loadChunks(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  planned: PlannedBinlog,
  changed: (difference: string) => RewindError,
): Promise<ChunkedBinlog> {
  return readPlannedChunks(client, bucket, location, { ...planned, chunks: planned.chunks! }).catch(
    (error: Error) => {
      throw changed(error.message);
    },
  );
}

function describeTarget(target: z.infer<typeof RestoreTargetSchema>): string {
  return target.kind === "time"
    ? target.time
    : target.kind === "gtid"
      ? `GTID ${target.gtid}`
      : target.backupId;
}
