import { byBackupId, rootOf } from "./backup-chain.js";
import type { BinlogRecord } from "./binlog/manifest.js";
import { gtidsAfter } from "./binlog/manifest.js";
import { gtidModel } from "./gtid/index.js";
import {
  backupServes,
  currentHistory,
  type HistoryTree,
  INITIAL_HISTORY,
  NO_HISTORIES,
  recordsOnHistory,
} from "./history.js";
import type { BackupManifest } from "./manifest.js";
import { bySource, stitchChain } from "./restorable-window.js";

/**
 * PITR-aware retention (DESIGN §8: retention must never delete binlogs a retained backup needs).
 * Keep at least `fullBackups` full backups and every backup needed to reach any point of the last
 * `pitrDays` days; never the newest full backup; and every binlog from the oldest kept backup's
 * position on. A run that would break a rule deletes nothing and says why.
 */
export interface RetentionPolicy {
  readonly fullBackups: number;
  readonly pitrDays: number;
  /** Objects younger than this cannot be deleted (S3 Object Lock, compliance mode). */
  readonly objectLockDays?: number;
}

export interface RetentionDecision {
  readonly keepBackups: string[];
  readonly deleteBackups: string[];
  /** `<source>/<file>` of binlogs (shipped whole or as chunks) no kept backup needs. */
  readonly deleteBinlogs: string[];
  /** Why nothing was deleted, when a rule would have been broken. */
  readonly refused: string | null;
  readonly notes: string[];
}

const DAY = 24 * 3600 * 1000;

/** A decision that deletes nothing, saying why when a rule would have been broken. */
function keepEverything(
  backups: readonly BackupManifest[],
  refused: string | null,
  notes: string[],
): RetentionDecision {
  return {
    keepBackups: backups.map((b) => b.backupId),
    deleteBackups: [],
    deleteBinlogs: [],
    refused,
    notes,
  };
}

/** Until when an object written at `time` is under Object Lock, or null without a lock. */
function objectLock(policy: RetentionPolicy): (time: string) => Date | null {
  return (time) =>
    policy.objectLockDays === undefined ? null : new Date(Date.parse(time) + policy.objectLockDays * DAY);
}

/**
 * The candidate full backups that may go now: those Object Lock lets go, less those an
 * incremental still under Object Lock is built on (it cannot go, and without its chain it could
 * not be restored). Each one kept is noted.
 */
function deletableNow(
  backups: readonly BackupManifest[],
  candidates: readonly BackupManifest[],
  lockedUntil: (time: string) => Date | null,
  now: Date,
  notes: string[],
): BackupManifest[] {
  const byId = byBackupId(backups);
  return unlocked(candidates, lockedUntil, now, notes).filter((full) => {
    const locked = backups.find((backup) => {
      if (backup.type !== "incremental" || rootOf(backup, byId) !== full) return false;
      const until = lockedUntil(backup.endTime);
      return until !== null && until > now;
    });
    if (locked)
      notes.push(
        `${full.backupId} is kept: incremental ${locked.backupId}, built on it, is under Object Lock`,
      );
    return !locked;
  });
}

/**
 * The decision over every backup: an incremental goes with the full backup its chain starts from,
 * and stays while that one stays (retention never deletes a link a kept backup needs). One whose
 * chain is already broken is kept, and noted: nothing can restore it, but it is evidence.
 */
function withIncrementals(
  backups: readonly BackupManifest[],
  retained: readonly BackupManifest[],
  deletable: readonly BackupManifest[],
  notes: string[],
): { keepBackups: string[]; deleteBackups: string[] } {
  const byId = byBackupId(backups);
  const keepBackups = retained.map((b) => b.backupId);
  const deleteBackups = deletable.map((b) => b.backupId);
  for (const backup of backups) {
    if (backup.type !== "incremental") continue;
    const root = rootOf(backup, byId);
    if (root && deletable.includes(root)) deleteBackups.push(backup.backupId);
    else {
      keepBackups.push(backup.backupId);
      if (!root)
        notes.push(`incremental ${backup.backupId} has a broken chain (nothing can restore it); kept`);
    }
  }
  return { keepBackups: keepBackups.sort(), deleteBackups: deleteBackups.sort() };
}

/** The candidates Object Lock lets go now; each one it keeps is noted. */
function unlocked(
  candidates: readonly BackupManifest[],
  lockedUntil: (time: string) => Date | null,
  now: Date,
  notes: string[],
): BackupManifest[] {
  return candidates.filter((backup) => {
    const until = lockedUntil(backup.endTime);
    if (until && until > now) {
      notes.push(`${backup.backupId} is under Object Lock until ${until.toISOString()}; kept`);
      return false;
    }
    return true;
  });
}

export function planRetention(
  backups: readonly BackupManifest[],
  binlogs: ReadonlyMap<string, readonly BinlogRecord[]>,
  policy: RetentionPolicy,
  now: Date,
  tree: HistoryTree = NO_HISTORIES,
): RetentionDecision {
  if (tree.histories.length > 0) return planRetentionOnHistories(backups, binlogs, policy, now, tree);
  const full = backups.filter((b) => b.type === "full").sort((a, b) => a.backupId.localeCompare(b.backupId));
  const nothing = (refused: string | null, notes: string[] = []) => keepEverything(backups, refused, notes);
  if (full.length === 0) return nothing(null, ["no complete full backup: nothing is deleted"]);

  const windowStart = new Date(now.getTime() - policy.pitrDays * DAY).toISOString();
  // The newest backup that is older than the window start can reach the window's first moment.
  const anchorIndex = full.map((b) => b.endTime <= windowStart).lastIndexOf(true);
  const byWindow = Math.max(0, anchorIndex);
  const byCount = Math.max(0, full.length - policy.fullBackups);
  const firstKept = Math.min(byWindow, byCount);
  const kept = full.slice(firstKept);
  const candidates = full.slice(0, firstKept);

  const notes: string[] = [];
  const lockedUntil = objectLock(policy);
  const deletable = deletableNow(backups, candidates, lockedUntil, now, notes);

  // Every kept backup must still reach the present through its binlogs, from any source; a gap
  // means the window is already broken, and deleting older backups could remove the only way
  // around it. A binlog is deletable when every transaction in it is in the oldest kept backup's
  // consistent point (so every kept backup is past it) and that backup's chain does not use it.
  const retained = full.filter((backup) => kept.includes(backup) || !deletable.includes(backup));
  const oldest = retained[0]!;
  const chain = stitchChain(oldest, binlogs);
  if (chain.gap) {
    return nothing(
      `the binlogs after the oldest kept backup ${oldest.backupId} have a gap after ${chain.gap.after} (${chain.gap.reason}) inside the retained window; nothing is deleted until it is repaired or a new full backup covers it`,
    );
  }
  const used = new Set(chain.links.map((link) => link.record));
  const start = gtidModel(oldest.engine.name).parseSet(oldest.binlog.gtidSet);
  const deleteBinlogs: string[] = [];
  for (const [source, files] of binlogs) {
    for (const manifest of files) {
      // A chunked file (a host lost while writing it) goes as a whole file does.
      if (used.has(manifest) || !start.contains(gtidsAfter(manifest))) continue;
      const until = lockedUntil(manifest.lastEventTime ?? manifest.shippedAt);
      if (until && until > now) continue;
      deleteBinlogs.push(`${source}/${manifest.file}`);
    }
  }
  return { ...withIncrementals(backups, retained, deletable, notes), deleteBinlogs, refused: null, notes };
}

/**
 * Retention once the cluster has branched (core/history). The policy (count and window) applies to
 * the backups that serve the current history; a backup of a discarded history alone (an old
 * primary's future) goes once it is older than the window, which is also its forensic window. A
 * binlog stays while any kept backup's chain on any history it serves uses it or lies before it:
 * a file goes only when, on every history it belongs to, every kept backup serving that history
 * is past it, and no chain uses it.
 */
function planRetentionOnHistories(
  backups: readonly BackupManifest[],
  binlogs: ReadonlyMap<string, readonly BinlogRecord[]>,
  policy: RetentionPolicy,
  now: Date,
  tree: HistoryTree,
): RetentionDecision {
  const current = currentHistory(tree);
  const full = backups.filter((b) => b.type === "full").sort((a, b) => a.backupId.localeCompare(b.backupId));
  const serving = full.filter((backup) => backupServes(tree, backup, current));
  const nothing = (refused: string | null, notes: string[] = []) => keepEverything(backups, refused, notes);
  if (serving.length === 0) {
    return nothing(
      `no full backup serves the current history ${current}; nothing is deleted until one is taken on its primary`,
    );
  }
  const windowStart = new Date(now.getTime() - policy.pitrDays * DAY).toISOString();
  const anchorIndex = serving.map((b) => b.endTime <= windowStart).lastIndexOf(true);
  const firstKept = Math.min(Math.max(0, anchorIndex), Math.max(0, serving.length - policy.fullBackups));
  const notes: string[] = [];
  const lockedUntil = objectLock(policy);
  const candidates = [
    ...serving.slice(0, firstKept),
    ...full.filter((backup) => !serving.includes(backup) && backup.endTime <= windowStart),
  ];
  const deletable = deletableNow(backups, candidates, lockedUntil, now, notes);
  const retained = full.filter((backup) => !deletable.includes(backup));
  const records = [...binlogs.values()].flat();
  const ids = [INITIAL_HISTORY, ...tree.histories.map((history) => history.id)];
  const used = new Set<string>();
  // Per history: the records on it (an ancestor's cut at the branch point) and the kept backups
  // that serve it, which must each be past a file before it may go.
  const keep = new Set<string>();
  const key = (record: BinlogRecord) => `${record.source}/${record.file}`;
  for (const id of ids) {
    const onHistory = recordsOnHistory(tree, id, records);
    const kept = retained.filter((backup) => backupServes(tree, backup, id));
    if (kept.length === 0) continue;
    const sources = bySource(onHistory);
    for (const backup of kept) {
      const chain = stitchChain(backup, sources);
      if (chain.gap && id === current) {
        return nothing(
          `the binlogs after kept backup ${backup.backupId} on the current history ${current} have a gap after ${chain.gap.after} (${chain.gap.reason}); nothing is deleted until it is repaired or a new full backup covers it`,
        );
      }
      for (const link of chain.links) used.add(key(link.record));
      const start = gtidModel(backup.engine.name).parseSet(backup.binlog.gtidSet);
      for (const record of onHistory) if (!start.contains(gtidsAfter(record))) keep.add(key(record));
    }
  }
  const deleteBinlogs: string[] = [];
  for (const record of records) {
    if (used.has(key(record)) || keep.has(key(record))) continue;
    const until = lockedUntil(record.lastEventTime ?? record.shippedAt);
    if (until && until > now) continue;
    deleteBinlogs.push(key(record));
  }
  return { ...withIncrementals(backups, retained, deletable, notes), deleteBinlogs, refused: null, notes };
}
