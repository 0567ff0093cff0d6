import type { BinlogManifest } from "./binlog/manifest.js";
import { ErrorNames, RewindError } from "./errors.js";
import { parseGtid, parseGtidPosition, positionIncludes } from "./gtid.js";
import type { BackupManifest } from "./manifest.js";
import { chainFrom, findGaps, positionAfter } from "./restorable-window.js";

/**
 * Restore targets. A time target includes every transaction whose binlog timestamp is at or
 * before it; binlog timestamps have one-second resolution, so the whole second is included. A
 * GTID target includes that transaction.
 */
export type RestoreTarget =
  | { readonly kind: "time"; readonly time: string }
  | { readonly kind: "gtid"; readonly gtid: string }
  | { readonly kind: "backup"; readonly backupId: string };

export interface PlannedBinlog {
  readonly file: string;
  /** Replay starts here: the backup's exact position in the first file, the file's start after. */
  readonly startPosition: number;
  readonly manifest: BinlogManifest;
}

export interface RestorePlan {
  readonly target: RestoreTarget;
  readonly backup: BackupManifest;
  /** Empty when the backup itself is the target. */
  readonly binlogs: PlannedBinlog[];
}

/** The position right after the binlog file header (magic number); replay of later files starts there. */
const FILE_START = 4;

function refuse(message: string): RewindError {
  return new RewindError(ErrorNames.planRefused, message);
}

export function parseRestoreTarget(until: string): RestoreTarget {
  if (/^\d+-\d+-\d+$/.test(until)) return { kind: "gtid", gtid: until };
  const time = Date.parse(until);
  if (Number.isNaN(time) || !/(Z|[+-]\d\d:?\d\d)$/.test(until)) {
    throw refuse(
      `"${until}" is neither a GTID (domain-server-seq, such as 0-1-1042) nor a time with a zone (such as 2026-11-21T10:15:00Z)`,
    );
  }
  return { kind: "time", time: new Date(time).toISOString() };
}

/**
 * Picks the newest full backup from before the target and the binlogs from its exact position up
 * to the file that reaches the target, refusing a target outside the restorable window or behind
 * a gap in the chain, with the reason.
 */
export function planRestore(
  target: RestoreTarget,
  backups: readonly BackupManifest[],
  binlogs: readonly BinlogManifest[],
): RestorePlan {
  const full = backups
    .filter((backup) => backup.type === "full")
    .sort((a, b) => a.backupId.localeCompare(b.backupId));
  if (target.kind === "backup") {
    const backup = full.find((candidate) => candidate.backupId === target.backupId);
    if (!backup)
      throw refuse(`there is no complete full backup ${target.backupId}; \`rewind-agent list\` shows them`);
    return { target, backup, binlogs: [] };
  }
  const candidates =
    target.kind === "time"
      ? full.filter((backup) => backup.endTime <= target.time)
      : full.filter(
          (backup) => !positionIncludes(parseGtidPosition(backup.binlog.gtidSet), parseGtid(target.gtid)),
        );
  const backup = candidates.at(-1);
  if (!backup) {
    const oldest = full[0];
    throw refuse(
      oldest
        ? `${describe(target)} is before the oldest full backup's consistent point (${oldest.backupId}, ${oldest.endTime}, GTID ${oldest.binlog.gtidSet}); nothing older is kept`
        : "there is no complete full backup to restore from; take one with `rewind-agent backup --type full`",
    );
  }
  const sourceBinlogs = binlogs.filter((manifest) => manifest.source === backup.binlogSource);
  const chain = chainFrom(backup, sourceBinlogs);
  if (!chain) {
    throw refuse(
      `the binlog ${backup.binlog.file} that follows backup ${backup.backupId} has not been shipped from ${backup.binlogSource}; run \`rewind-agent binlog-push --flush\` on that host`,
    );
  }
  // A time target includes its whole second, and one second's events can span files: the last
  // file needed is the first with an event after the target second, not the first that reaches it.
  const second = target.kind === "time" ? targetSecond(target.time) : undefined;
  const reaches = (manifest: BinlogManifest) =>
    target.kind === "time"
      ? manifest.lastEventTime !== null && manifest.lastEventTime >= second!.end
      : positionIncludes(positionAfter(manifest), parseGtid(target.gtid));
  const end = chain.findIndex(reaches);
  if (end < 0) {
    const last = chain.at(-1)!;
    const gap = findGaps(sourceBinlogs).find((candidate) => candidate.after === last.file);
    if (gap) {
      throw refuse(
        `${describe(target)} lies past a gap in the binlog chain after ${gap.after}: ${gap.reason}. The newest reachable point is ${last.lastEventTime} (GTID ${last.lastGtid}); restore to that or earlier`,
      );
    }
    if (second && last.lastEventTime !== null && last.lastEventTime >= second.start) {
      throw refuse(
        `the last shipped event (${last.lastEventTime}, GTID ${last.lastGtid} in ${last.file}) is in the target second, and a target time includes its whole second: later transactions of that second may not be shipped yet. Ship newer binlogs (binlog-push --flush), choose an earlier second, or give the GTID ${last.lastGtid}`,
      );
    }
    throw refuse(
      `${describe(target)} is after the last shipped event (${last.lastEventTime}, GTID ${last.lastGtid} in ${last.file}); ship newer binlogs (binlog-push --flush) or choose an earlier target`,
    );
  }
  return {
    target,
    backup,
    binlogs: chain.slice(0, end + 1).map((manifest, index) => ({
      file: manifest.file,
      startPosition: index === 0 ? backup.binlog.position : FILE_START,
      manifest,
    })),
  };
}

/** The whole second a time target includes, as ISO strings comparable with manifest times. */
function targetSecond(time: string): { start: string; end: string } {
  const start = Math.floor(Date.parse(time) / 1000) * 1000;
  return { start: new Date(start).toISOString(), end: new Date(start + 1000).toISOString() };
}

function describe(target: RestoreTarget): string {
  return target.kind === "time"
    ? `the target time ${target.time}`
    : target.kind === "gtid"
      ? `GTID ${target.gtid}`
      : target.backupId;
}
