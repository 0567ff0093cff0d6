import type { BinlogRecord } from "./binlog/manifest.js";
import { binlogSequence, gtidsAfter } from "./binlog/manifest.js";
import { gtidModel } from "./gtid/index.js";
import type { BackupManifest } from "./manifest.js";

/**
 * What a point-in-time restore can reach: from a full backup's consistent point, forward through
 * an unbroken chain of shipped binlogs. A missing file or a GTID discontinuity cuts the chain.
 */
export interface BinlogGap {
  /** The last file before the gap. */
  readonly after: string;
  /** The next file that was shipped. */
  readonly next: string;
  readonly reason: string;
}

export interface RestorableWindow {
  readonly source: string;
  /** The oldest point reachable: the consistent point of the oldest full backup with a chain. */
  readonly from: string | null;
  /** The newest point reachable: the last event in the unbroken chain after the newest backup. */
  readonly to: string | null;
  readonly toGtid: string | null;
  readonly gaps: BinlogGap[];
}

/** Where the chain breaks between consecutive shipped files of one source. */
export function findGaps(binlogs: readonly BinlogRecord[]): BinlogGap[] {
  const gaps: BinlogGap[] = [];
  for (let i = 1; i < binlogs.length; i++) {
    const [previous, next] = [binlogs[i - 1]!, binlogs[i]!];
    const expected = binlogSequence(previous.file) + 1;
    if (binlogSequence(next.file) !== expected) {
      const missing = previous.file.replace(/\d+$/, (digits) =>
        String(expected).padStart(digits.length, "0"),
      );
      gaps.push({ after: previous.file, next: next.file, reason: `${missing} was never shipped` });
      continue;
    }
    const after = gtidsAfter(previous);
    const before = gtidModel(next.engine).parseSet(next.gtidsBefore);
    if (!before.equals(after)) {
      const missing = before.subtract(after);
      gaps.push({
        after: previous.file,
        next: next.file,
        reason: `GTIDs jump from ${after.toString() || "(none)"} to ${next.gtidsBefore || "(none)"}${
          missing.isEmpty() ? "" : `: ${missing} were never shipped`
        }`,
      });
    }
  }
  return gaps;
}

/**
 * The binlogs a restore from `backup` must replay, in order, up to the first gap. The first one is
 * the file holding the backup's consistent point; `undefined` when that file was not shipped.
 */
export function chainFrom<B extends BinlogRecord>(
  backup: BackupManifest,
  binlogs: readonly B[],
): B[] | undefined {
  const start = binlogs.findIndex((manifest) => manifest.file === backup.binlog.file);
  if (start < 0) return undefined;
  const gaps = findGaps(binlogs.slice(start));
  const cut = gaps[0]
    ? binlogs.findIndex((manifest) => manifest.file === gaps[0]!.after) + 1
    : binlogs.length;
  return binlogs.slice(start, cut);
}

export function restorableWindow(
  source: string,
  backups: readonly BackupManifest[],
  binlogs: readonly BinlogRecord[],
): RestorableWindow {
  const full = backups.filter((backup) => backup.type === "full" && backup.binlogSource === source);
  const gaps = findGaps(binlogs);
  let from: string | null = null;
  let to: string | null = null;
  let toGtid: string | null = null;
  for (const backup of full) {
    const chain = chainFrom(backup, binlogs) ?? [];
    from ??= backup.endTime;
    const last = chain.at(-1);
    const reach =
      last?.lastEventTime && last.lastEventTime > backup.endTime ? last.lastEventTime : backup.endTime;
    if (to === null || reach >= to) {
      to = reach;
      toGtid = last ? gtidsAfter(last).toString() : backup.binlog.gtidSet;
    }
  }
  return { source, from, to, toGtid, gaps };
}
