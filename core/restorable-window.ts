import { isChunked } from "./binlog/chunk.js";
import type { BinlogRecord } from "./binlog/manifest.js";
import { binlogSequence, gtidsAfter } from "./binlog/manifest.js";
import { type GtidSet, gtidModel } from "./gtid/index.js";
import { stopAtOf } from "./history.js";
import type { BackupManifest } from "./manifest.js";

/**
 * What a point-in-time restore can reach: from a full backup's consistent point, forward through
 * shipped binlogs linked by GTID. The window belongs to the cluster, not to one host: a chain may
 * start in any source's binlog and switch to another source's wherever that one holds the next
 * transactions (a failover, a replaced replica, a backup taken on a replica while the primary
 * ships). A gap is where no source holds the next transaction.
 */
export interface BinlogGap {
  /** The last link before the gap, as `<source>/<file>`. */
  readonly after: string;
  /** The next shipped binlog past the gap, as `<source>/<file>`. */
  readonly next: string;
  readonly reason: string;
}

export interface ChainLink<B extends BinlogRecord = BinlogRecord> {
  readonly record: B;
  /**
   * Where replay starts in this file: the backup's exact position in the file it was taken in,
   * the file's start when it continues the link before it in the same source; null when it is
   * found by GTID (the first transaction the GTIDs executed before it do not hold).
   */
  readonly startPosition: number | null;
}

export interface StitchedChain<B extends BinlogRecord = BinlogRecord> {
  readonly links: ChainLink<B>[];
  /** The GTIDs executed once every link is replayed. */
  readonly reached: GtidSet;
  /** Shipped binlogs go on past the chain's end, but no source holds what comes between. */
  readonly gap?: BinlogGap;
}

export interface RestorableWindow {
  /** The oldest point reachable: the consistent point of the oldest full backup. */
  readonly from: string | null;
  /** The newest point reachable: the last event of the newest-reaching chain. */
  readonly to: string | null;
  readonly toGtid: string | null;
  /** The sources whose binlogs that chain replays, in order of first use. */
  readonly sources: string[];
  readonly gaps: BinlogGap[];
}

/** The position right after the binlog file header (magic number): a continuing file starts there. */
export const FILE_START = 4;

const where = (record: BinlogRecord) => `${record.source}/${record.file}`;

/**
 * Chunks a source shipped past a missing chunk of the same file: they cannot be replayed, but
 * they show that transactions exist past the hole, which is a gap unless another source holds them.
 */
export type UnreplayableRecord = BinlogRecord & { readonly unreplayable: string };

function unreplayable(record: BinlogRecord): string | undefined {
  return (record as Partial<UnreplayableRecord>).unreplayable;
}

/** Groups records by source, each source's in file order. */
export function bySource<B extends BinlogRecord>(records: readonly B[]): Map<string, B[]> {
  const sources = new Map<string, B[]>();
  for (const record of records) sources.set(record.source, [...(sources.get(record.source) ?? []), record]);
  for (const files of sources.values()) files.sort((a, b) => binlogSequence(a.file) - binlogSequence(b.file));
  return sources;
}

/** Whether `next` continues `previous` in the same source: the following file, from where it ended. */
function continues(previous: BinlogRecord, next: BinlogRecord): boolean {
  return (
    next.source === previous.source &&
    !isChunked(previous) &&
    binlogSequence(next.file) === binlogSequence(previous.file) + 1 &&
    gtidModel(next.engine).parseSet(next.gtidsBefore).equals(gtidsAfter(previous))
  );
}

/** Latest last event first; a closed file before a chunked prefix; then by name, for a stable choice. */
function furthest(a: BinlogRecord, b: BinlogRecord): number {
  return (
    (b.lastEventTime ?? "").localeCompare(a.lastEventTime ?? "") ||
    Number(isChunked(a)) - Number(isChunked(b)) ||
    where(a).localeCompare(where(b))
  );
}

/**
 * The binlogs a restore from `backup` replays, in order, linked by GTID across every source:
 * from the backup's exact position in its own file when its source shipped it, otherwise from
 * whichever source holds the transactions after its consistent point. At each step the same
 * source's next file is taken when it continues; otherwise any source's file whose GTIDs before
 * it are all executed and that adds some not yet executed, preferring the one that reaches
 * furthest (after a failover, the promoted server's history). The chain ends where no file adds
 * anything; if shipped binlogs go on past that point, that is a gap.
 */
export function stitchChain<B extends BinlogRecord>(
  backup: BackupManifest,
  sources: ReadonlyMap<string, readonly B[]>,
): StitchedChain<B> {
  const gtids = gtidModel(backup.engine.name);
  const all = [...sources.values()].flat();
  const before = new Map(all.map((record) => [record, gtids.parseSet(record.gtidsBefore)]));
  const after = new Map(all.map((record) => [record, gtidsAfter(record)]));
  let reached = gtids.parseSet(backup.binlog.gtidSet);
  const links: ChainLink<B>[] = [];
  const own = sources.get(backup.binlogSource)?.find((record) => record.file === backup.binlog.file);
  if (own && !reached.contains(after.get(own)!)) {
    links.push({ record: own, startPosition: backup.binlog.position });
    reached = reached.union(after.get(own)!);
  }
  for (;;) {
    const last = links.at(-1)?.record;
    const sameSource = last ? sources.get(last.source) : undefined;
    const following = last && sameSource?.[sameSource.indexOf(last) + 1];
    if (last && following && continues(last, following) && !reached.contains(after.get(following)!)) {
      links.push({ record: following, startPosition: FILE_START });
      reached = reached.union(after.get(following)!);
      continue;
    }
    const next = all
      .filter((record) => !unreplayable(record))
      .filter((record) => reached.contains(before.get(record)!) && !reached.contains(after.get(record)!))
      .sort(furthest)[0];
    if (!next) break;
    links.push({ record: next, startPosition: before.get(next)!.equals(reached) ? FILE_START : null });
    reached = reached.union(after.get(next)!);
  }
  const beyond = all
    .filter((record) => !reached.contains(after.get(record)!))
    .sort((a, b) => (a.firstEventTime ?? "").localeCompare(b.firstEventTime ?? ""))[0];
  if (!beyond) return { links, reached };
  const last = links.at(-1)?.record;
  const missing = before.get(beyond)!.subtract(reached);
  return {
    links,
    reached,
    gap: {
      after: last ? where(last) : `backup ${backup.backupId}`,
      next: where(beyond),
      reason: unreplayable(beyond)
        ? `${unreplayable(beyond)}, and no other source holds the transactions after ${reached}`
        : `no source shipped the transactions after ${reached.toString() || "(none)"}${
            missing.isEmpty() ? "" : ` up to ${missing}`
          }; the next shipped binlog, ${where(beyond)}, starts after them`,
    },
  };
}

/**
 * Where consecutive links of a planned chain do not join: a link whose GTIDs before it are not
 * all executed by the links before it (a link cut at a branch point adds only what it holds up
 * to there). The restore agent checks a stored plan with it.
 */
export function linkGap(backup: BackupManifest, records: readonly BinlogRecord[]): BinlogGap | undefined {
  const gtids = gtidModel(backup.engine.name);
  let reached = gtids.parseSet(backup.binlog.gtidSet);
  let previous = `backup ${backup.backupId}`;
  for (const record of records) {
    const needed = gtids.parseSet(record.gtidsBefore);
    if (!reached.contains(needed)) {
      return {
        after: previous,
        next: where(record),
        reason: `${where(record)} needs ${needed.subtract(reached)} executed before it, which no planned binlog holds`,
      };
    }
    const stopAt = stopAtOf(record);
    const after = gtidsAfter(record);
    reached = reached.union(stopAt ? after.intersect(gtids.parseSet(stopAt)) : after);
    previous = where(record);
  }
  return undefined;
}

/** Where the restorable window stops before the newest shipped transaction, from any backup's chain. */
export function findGaps(
  backups: readonly BackupManifest[],
  sources: ReadonlyMap<string, readonly BinlogRecord[]>,
): BinlogGap[] {
  const gaps = new Map<string, BinlogGap>();
  for (const backup of backups.filter((candidate) => candidate.type === "full")) {
    const { gap } = stitchChain(backup, sources);
    if (gap) gaps.set(`${gap.after} ${gap.next}`, gap);
  }
  return [...gaps.values()];
}

/** The cluster's restorable window over every source's binlogs. */
export function restorableWindow(
  backups: readonly BackupManifest[],
  sources: ReadonlyMap<string, readonly BinlogRecord[]>,
): RestorableWindow {
  const full = backups.filter((backup) => backup.type === "full");
  let to: string | null = null;
  let toGtid: string | null = null;
  let used: string[] = [];
  const gaps = new Map<string, BinlogGap>();
  for (const backup of full) {
    const chain = stitchChain(backup, sources);
    if (chain.gap) gaps.set(`${chain.gap.after} ${chain.gap.next}`, chain.gap);
    const last = chain.links.at(-1)?.record;
    const reach =
      last?.lastEventTime && last.lastEventTime > backup.endTime ? last.lastEventTime : backup.endTime;
    if (to === null || reach >= to) {
      to = reach;
      toGtid = chain.reached.toString();
      used = [...new Set(chain.links.map((link) => link.record.source))];
    }
  }
  return { from: full[0]?.endTime ?? null, to, toGtid, sources: used, gaps: [...gaps.values()] };
}
