import { byBackupId, chainOf, restorableBackups } from "./backup-chain.js";
import { type BinlogRecord, gtidsAfter } from "./binlog/manifest.js";
import type { EngineName } from "./engine.js";
import { ErrorNames, RewindError } from "./errors.js";
import { gtidModel, isAnyGtid } from "./gtid/index.js";
import {
  backupServes,
  type HistoryTree,
  INITIAL_HISTORY,
  NO_HISTORIES,
  recordsOnHistory,
  resolveHistory,
  stopAtOf,
} from "./history.js";
import type { BackupManifest } from "./manifest.js";
import { bySource, stitchChain } from "./restorable-window.js";
import { formatMicros, parseMicros, requireMicros, secondOf } from "./time.js";

/**
 * Restore targets. A time target includes every transaction committed at or before it: to the
 * microsecond on MySQL (immediate_commit_timestamp), and on MariaDB, whose binlog timestamps
 * have one-second resolution, the whole second. A GTID target includes that transaction.
 */
export type RestoreTarget =
  | { readonly kind: "time"; readonly time: string }
  | { readonly kind: "gtid"; readonly gtid: string }
  | { readonly kind: "backup"; readonly backupId: string };

export interface PlannedBinlog<B extends BinlogRecord = BinlogRecord> {
  readonly file: string;
  /**
   * Replay starts here: the backup's exact position in its own file, the file's start in the
   * next file of the same source; null where the chain switches to another source's binlog, whose
   * start is found by GTID in the file itself (the first transaction not yet executed).
   */
  readonly startPosition: number | null;
  /**
   * An ancestor history's file, cut at the branch point of the history restored on: replay stops
   * at its first transaction this GTID set does not hold (core/history). Null: the whole file.
   */
  readonly stopAt: string | null;
  /** The index record when planned, the whole manifest once fetched for a restore. */
  readonly manifest: B;
}

export interface RestorePlan<B extends BinlogRecord = BinlogRecord> {
  readonly target: RestoreTarget;
  readonly backup: BackupManifest;
  /**
   * The backups restored, oldest first: the full backup, then each incremental up to `backup`
   * (core/backup-chain); just `backup` when it is a full one.
   */
  readonly chain: readonly BackupManifest[];
  /** The history the target was resolved on (core/history): `initial` in a cluster without branches. */
  readonly history: string;
  /** Empty when the backup itself is the target. */
  readonly binlogs: PlannedBinlog<B>[];
}

function refuse(message: string): RewindError {
  return new RewindError(ErrorNames.planRefused, message);
}

export function parseRestoreTarget(until: string): RestoreTarget {
  if (isAnyGtid(until)) return { kind: "gtid", gtid: until.trim() };
  const micros = parseMicros(until);
  if (micros === null) {
    throw refuse(
      `"${until}" is neither a GTID (MariaDB domain-server-seq such as 0-1-1042, MySQL uuid:N such as 3e11fa47-71ca-11e1-9e33-c80aa9429562:23) nor a time with a zone (such as 2026-11-21T10:15:00Z)`,
    );
  }
  return { kind: "time", time: formatMicros(micros) };
}

/** Whether a transaction committed at `committed` (µs; MariaDB: its second) is within a time target. */
export function withinTime(engine: EngineName, target: number, committed: number): boolean {
  return engine === "mysql" ? committed <= target : secondOf(committed) <= secondOf(target);
}

/**
 * Whether `manifest` holds the end of a time target: an event in a later second, or (MySQL) a
 * transaction committed after it. Then every transaction up to the target is in it or before it.
 */
function reachesTime(manifest: BinlogRecord, target: number): boolean {
  if (
    manifest.lastEventTime !== null &&
    secondOf(requireMicros(manifest.lastEventTime, "lastEventTime")) > secondOf(target)
  )
    return true;
  return (
    manifest.engine === "mysql" &&
    manifest.lastCommitTime !== null &&
    requireMicros(manifest.lastCommitTime, "lastCommitTime") > target
  );
}

/**
 * Whether a restore to `target` may start from this backup (full, or incremental through its
 * chain): its consistent point is at or before the target time, or does not hold the target GTID
 * yet (a backup target: it is the one).
 */
export function restoresTo(target: RestoreTarget, backup: BackupManifest): boolean {
  if (target.kind === "backup") return backup.backupId === target.backupId;
  if (target.kind === "time") {
    return withinTime(
      backup.engine.name,
      requireMicros(target.time, "the target time"),
      requireMicros(backup.endTime, "endTime"),
    );
  }
  const gtids = gtidModel(backup.engine.name);
  return !gtids.parseSet(backup.binlog.gtidSet).isPast(gtids.parseGtid(target.gtid));
}

/**
 * The newest backup that does not go past the target and whose chain is complete (a GTID target
 * is checked against the cluster's GTID syntax and normalized), with its chain, or a refusal with
 * the reason. Reads no binlogs. `skipped`: newer backups that would have served but whose chain
 * lacks a link.
 */
export function chooseBackup(
  target: RestoreTarget,
  backups: readonly BackupManifest[],
): {
  backup: BackupManifest;
  target: RestoreTarget;
  chain: BackupManifest[];
  skipped: { backupId: string; missing: string; reason: string }[];
} {
  const sorted = [...backups].sort((a, b) => a.backupId.localeCompare(b.backupId));
  const { usable, broken } = restorableBackups(sorted);
  const byId = byBackupId(sorted);
  const chainFor = (backup: BackupManifest) => chainOf(backup, byId).links;
  if (target.kind === "backup") {
    const backup = usable.find((candidate) => candidate.backupId === target.backupId);
    if (!backup) {
      const lacking = broken.find((each) => each.backup.backupId === target.backupId);
      const newest = usable.at(-1);
      const reachable = newest
        ? ` The newest backup that can be restored is ${newest.backupId} (${newest.endTime}, GTID ${newest.binlog.gtidSet}); a point-in-time target replays binlogs past it`
        : "";
      throw refuse(
        lacking
          ? `backup ${target.backupId} cannot be restored: its chain needs ${lacking.missing}, which is missing or unusable (${lacking.reason}).${reachable}`
          : `there is no complete backup ${target.backupId}; \`rewind-agent list\` shows them`,
      );
    }
    return { backup, target, chain: chainFor(backup), skipped: [] };
  }
  const engine = sorted[0]?.engine.name ?? "mariadb";
  const gtids = gtidModel(engine);
  if (target.kind === "gtid" && !gtids.isGtid(target.gtid)) {
    throw refuse(
      `"${target.gtid}" is not a ${engine === "mysql" ? "MySQL" : "MariaDB"} GTID, and this cluster's backups come from ${engine}; give one such as ${gtids.example}`,
    );
  }
  if (target.kind === "time") requireMicros(target.time, "the target time");
  const normalized: RestoreTarget =
    target.kind === "gtid" ? { kind: "gtid", gtid: gtids.parseGtid(target.gtid) } : target;
  const backup = usable.filter((candidate) => restoresTo(normalized, candidate)).at(-1);
  const skipped = broken
    .filter(
      (each) => restoresTo(normalized, each.backup) && (!backup || each.backup.backupId > backup.backupId),
    )
    .map((each) => ({ backupId: each.backup.backupId, missing: each.missing, reason: each.reason }));
  if (!backup) {
    const oldest = usable[0];
    if (skipped.length > 0) throw refuse(`${describe(target)} ${lackingLinks(skipped)}`);
    throw refuse(
      oldest
        ? `${describe(target)} is before the oldest full backup's consistent point (${oldest.backupId}, ${oldest.endTime}, GTID ${oldest.binlog.gtidSet}); nothing older is kept`
        : "there is no complete full backup to restore from; take one with `rewind-agent backup --type full`",
    );
  }
  return { backup, target: normalized, chain: chainFor(backup), skipped };
}

/**
 * Picks the newest backup from before the target whose chain is complete (a full backup, or an
 * incremental with every link back to its full one) and the binlogs from its exact position up
 * to the file that reaches the target, refusing a target outside the restorable window or behind
 * a gap in the chain, with the reason.
 */
export function planRestore<B extends BinlogRecord>(
  target: RestoreTarget,
  backups: readonly BackupManifest[],
  binlogs: readonly B[],
  histories: HistoryChoice = { tree: NO_HISTORIES },
): RestorePlan<B> {
  const { tree } = histories;
  const history = resolveHistory(tree, binlogs, target, histories.history);
  const {
    backup,
    target: normalized,
    chain: links,
    skipped,
  } = chooseBackup(target, backupsOnHistory(tree, history, backups));
  // A refusal names the links that would have let a newer backup reach the target.
  const refusePlan = (message: string) =>
    refuse(
      skipped.length > 0
        ? `${message}. The target ${lackingLinks(skipped)}, which would have let a newer backup reach it`
        : message,
    );
  // A backup id, or a GTID the backup's consistent point already holds: nothing to replay.
  if (
    normalized.kind === "backup" ||
    (normalized.kind === "gtid" &&
      gtidModel(backup.engine.name).parseSet(backup.binlog.gtidSet).includes(normalized.gtid))
  ) {
    return { target: normalized, backup, chain: links, history, binlogs: [] };
  }
  const engine = backup.engine.name;
  const gtid = normalized.kind === "gtid" ? normalized.gtid : "";
  const targetMicros = normalized.kind === "time" ? requireMicros(normalized.time, "the target time") : 0;
  const stitched = stitchChain(backup, bySource(recordsOnHistory(tree, history, binlogs)));
  const chain = stitched.links;
  // A MariaDB time target includes its whole second, and one second's events can span files: the
  // last file needed is the first with an event after the target, not the first that reaches it.
  const reaches = (manifest: BinlogRecord) =>
    target.kind === "time" ? reachesTime(manifest, targetMicros) : gtidsAfter(manifest).includes(gtid);
  const end = chain.findIndex((link) => reaches(link.record));
  if (end < 0) {
    const last = chain.at(-1)?.record;
    const reachable = last
      ? `${last.lastEventTime} (GTID ${last.lastGtid} in ${last.source}/${last.file})`
      : `the backup's consistent point (${backup.endTime}, GTID ${backup.binlog.gtidSet})`;
    if (stitched.gap) {
      throw refusePlan(
        `${describe(target)} lies past a gap in the binlogs after ${stitched.gap.after}: ${stitched.gap.reason}. The newest reachable point is ${reachable}; restore to that or earlier`,
      );
    }
    if (last && stopAtOf(last)) {
      throw refusePlan(
        `${describe(target)} is past what history ${history} has shipped: it branched at GTID ${stopAtOf(last)}${last.lastEventTime ? ` (${last.lastEventTime})` : ""}, and its primary has shipped nothing since. Check that binlog-stream runs on its primary, or restore to that point; a target on the history it branched from needs \`--history\``,
      );
    }
    if (!last) {
      throw refusePlan(
        `no source has shipped the binlogs that follow backup ${backup.backupId} (GTID ${backup.binlog.gtidSet}); check that binlog-stream runs on the primary (\`rewind-agent status\`), or run \`rewind-agent binlog-push --flush\` there`,
      );
    }
    if (
      target.kind === "time" &&
      engine === "mariadb" &&
      last.lastEventTime !== null &&
      secondOf(requireMicros(last.lastEventTime, "lastEventTime")) === secondOf(targetMicros)
    ) {
      throw refusePlan(
        `the last shipped event (${reachable}) is in the target second, and a target time includes its whole second: later transactions of that second may not be shipped yet. Wait for the next chunk, choose an earlier second, or give the GTID ${last.lastGtid}`,
      );
    }
    throw refusePlan(
      `${describe(target)} is after the last shipped event, ${reachable}; wait until it is shipped (binlog-stream ships within seconds) or choose an earlier target`,
    );
  }
  return {
    target: normalized,
    backup,
    chain: links,
    history,
    binlogs: chain.slice(0, end + 1).map(({ record, startPosition }) => ({
      file: record.file,
      startPosition,
      stopAt: stopAtOf(record) ?? null,
      manifest: record,
    })),
  };
}

/** The histories a plan knows of, and the one asked for (else the target's, else the current one). */
export interface HistoryChoice {
  readonly tree: HistoryTree;
  readonly history?: string;
}

/**
 * The backups a restore on `history` may start from, refusing, with the reason, when backups
 * exist but none serves it (all taken on another history, or after its branch point).
 */
export function backupsOnHistory(
  tree: HistoryTree,
  history: string,
  backups: readonly BackupManifest[],
): BackupManifest[] {
  const serving = backups.filter((backup) => backupServes(tree, backup, history));
  const full = backups.filter((backup) => backup.type === "full");
  if (full.length > 0 && !serving.some((backup) => backup.type === "full")) {
    throw refuse(
      `no full backup serves history ${history}: ${full.map((b) => `${b.backupId} is on ${b.history ?? INITIAL_HISTORY}`).join(", ")}, each on another history or past the point where ${history} branched from it. Take a full backup on the current primary, or name another history`,
    );
  }
  return serving;
}

/** Why newer backups that would have served a target could not: the links their chains lack. */
export function lackingLinks(
  skipped: readonly { backupId: string; missing: string; reason: string }[],
): string {
  return `needs ${skipped.map((each) => `${each.missing} (to restore ${each.backupId}: ${each.reason})`).join("; ")}`;
}

function describe(target: RestoreTarget): string {
  return target.kind === "time"
    ? `the target time ${target.time}`
    : target.kind === "gtid"
      ? `GTID ${target.gtid}`
      : target.backupId;
}
