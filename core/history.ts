import { z } from "zod";
import { compactTimestamp, sanitizeHostName } from "./backup-id.js";
import { type BinlogRecord, binlogSequence, gtidsAfter } from "./binlog/manifest.js";
import { EngineName } from "./engine.js";
import { ErrorNames, RewindError } from "./errors.js";
import { type GtidSet, gtidModel } from "./gtid/index.js";
import type { BackupManifest } from "./manifest.js";

/**
 * Histories (DESIGN "Histories"): a cluster's transactions form a tree, not a line. A restore whose
 * server becomes the writable primary ("roll back and carry on") and a failover that lost
 * transactions the old primary had shipped each start a new history that branches from its parent
 * at an exact GTID set. The parent's transactions after that point are its discarded future: the
 * new history never replays them, although GTIDs cannot tell them apart (a MariaDB position keeps
 * one sequence number per domain, and the new primary continues the numbers the old one used).
 *
 * Every history but the initial one has a record in S3, `histories/<id>/history.json`, written by
 * the agent that starts it before its first transaction ships; each source that writes a history
 * has `histories/<id>/writers/<source>.json`, naming the binlog file its part starts in. A
 * source's binlog file belongs to the history of the newest writer record at or before it, and
 * to the initial history when there is none (so a cluster without histories works as before).
 */
export const INITIAL_HISTORY = "initial";
export const HISTORY_ID = /^(initial|\d{8}T\d{6}Z-[A-Za-z0-9._-]{1,100})$/;
export const HISTORY_FORMAT_VERSION = 1;

export function makeHistoryId(startedAt: Date, host: string): string {
  return `${compactTimestamp(startedAt)}-${sanitizeHostName(host)}`;
}

export const HistoryRecord = z.object({
  formatVersion: z.literal(HISTORY_FORMAT_VERSION),
  cluster: z.string().min(1),
  engine: EngineName,
  id: z.string().regex(HISTORY_ID),
  /** The history it branches from (`initial` for the first branch). */
  parent: z.string().regex(HISTORY_ID),
  /**
   * The branch point: every transaction executed when the history began (the restore's reached
   * position, the promoted server's replicated one), and the commit time of the last of them when
   * known (a restore's last replayed transaction; null after a failover).
   */
  branch: z.object({ gtids: z.string(), time: z.iso.datetime().nullable() }),
  startedAt: z.iso.datetime(),
  reason: z.enum(["restore", "failover"]),
  /** The host and binlog source that began it, and its server's identity. */
  host: z.string().min(1),
  source: z.string().min(1),
  serverId: z.number().int().nonnegative(),
  serverUuid: z.string().nullable(),
  /** A restore: what it restored. */
  restore: z.object({ backupId: z.string(), target: z.string() }).optional(),
  /** A failover: what the parent had shipped that the promoted server never received. */
  lost: z.string().optional(),
});
export type HistoryRecord = z.infer<typeof HistoryRecord>;

export const HistoryWriter = z.object({
  formatVersion: z.literal(HISTORY_FORMAT_VERSION),
  cluster: z.string().min(1),
  history: z.string().regex(HISTORY_ID),
  source: z.string().min(1),
  host: z.string().min(1),
  /** The source's binlog file in which its part of the history starts: this file and later ones. */
  file: z.string().min(1),
  since: z.iso.datetime(),
});
export type HistoryWriter = z.infer<typeof HistoryWriter>;

export interface HistoryTree {
  /** Oldest first: the newest is the current history. */
  readonly histories: readonly HistoryRecord[];
  readonly writers: readonly HistoryWriter[];
}

export const NO_HISTORIES: HistoryTree = { histories: [], writers: [] };

export function historyTree(
  histories: readonly HistoryRecord[],
  writers: readonly HistoryWriter[],
): HistoryTree {
  return {
    histories: [...histories].sort(
      (a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id),
    ),
    writers: [...writers],
  };
}

function refuse(message: string): RewindError {
  return new RewindError(ErrorNames.planRefused, message);
}

/** The history the cluster's primary writes now: the one begun last. */
export function currentHistory(tree: HistoryTree): string {
  return tree.histories.at(-1)?.id ?? INITIAL_HISTORY;
}

export function findHistory(tree: HistoryTree, id: string): HistoryRecord | undefined {
  return tree.histories.find((history) => history.id === id);
}

/** The histories from the initial one's first branch down to `id` (empty for the initial history). */
export function lineage(tree: HistoryTree, id: string): HistoryRecord[] {
  const path: HistoryRecord[] = [];
  let node = id;
  while (node !== INITIAL_HISTORY) {
    const history = findHistory(tree, node);
    if (!history) {
      throw refuse(
        path.length === 0
          ? `there is no history ${id}; \`rewind-agent list\` shows the cluster's histories (${[INITIAL_HISTORY, ...tree.histories.map((h) => h.id)].join(", ")})`
          : `history ${path[0]!.id} branches from ${node}, whose record is missing from S3`,
      );
    }
    if (path.includes(history)) throw refuse(`the histories from ${id} up form a loop at ${node}`);
    path.unshift(history);
    node = history.parent;
  }
  return path;
}

/** The ids from the initial history down to `id`. */
export function lineageIds(tree: HistoryTree, id: string): string[] {
  return [INITIAL_HISTORY, ...lineage(tree, id).map((history) => history.id)];
}

/** The history a source's binlog file belongs to: the newest writer record of its source at or before it. */
export function historyOfRecord(tree: HistoryTree, record: { source: string; file: string }): string {
  let best: HistoryWriter | undefined;
  const sequence = binlogSequence(record.file);
  for (const writer of tree.writers) {
    if (writer.source !== record.source || binlogSequence(writer.file) > sequence) continue;
    const order = best
      ? binlogSequence(writer.file) - binlogSequence(best.file) || writer.since.localeCompare(best.since)
      : 1;
    if (order > 0) best = writer;
  }
  return best?.history ?? INITIAL_HISTORY;
}

/**
 * An ancestor's file cut at the branch point of the history planned on: replay stops at its first
 * transaction the branch point does not hold (core/restore-plan, host-agent/restore/binlogs).
 */
export type CappedRecord = BinlogRecord & { readonly stopAt: string };

export function stopAtOf(record: BinlogRecord): string | undefined {
  return (record as Partial<CappedRecord>).stopAt;
}

/** A MariaDB position's GTID in the domain of `gtid`. */
function sameDomain(position: GtidSet, gtid: string | null): string | null {
  if (!gtid || position.engine !== "mariadb") return null;
  const domain = gtid.split("-")[0];
  return (
    position
      .toString()
      .split(",")
      .find((each) => each.split("-")[0] === domain) ?? null
  );
}

/**
 * The binlogs a restore on history `id` may replay: its own sources' files, and each ancestor's
 * files up to the branch point of its child on the way (cut there: `stopAt`); another history's
 * files and an ancestor's discarded future never. The files of a history begun by a restore need
 * its branch point executed before them: the restored server's binlog did not record the replay.
 */
export function recordsOnHistory<B extends BinlogRecord>(
  tree: HistoryTree,
  id: string,
  records: readonly B[],
): B[] {
  if (tree.histories.length === 0) return [...records];
  const path = lineage(tree, id);
  const ids = [INITIAL_HISTORY, ...path.map((history) => history.id)];
  const result: B[] = [];
  for (const record of records) {
    const index = ids.indexOf(historyOfRecord(tree, record));
    if (index < 0) continue;
    const gtids = gtidModel(record.engine);
    const own = index > 0 ? path[index - 1] : undefined;
    let before = gtids.parseSet(record.gtidsBefore);
    let shaped: B = record;
    if (own?.reason === "restore") {
      before = before.union(gtids.parseSet(own.branch.gtids));
      shaped = { ...shaped, gtidsBefore: before.toString() };
    }
    const child = path[index];
    if (child) {
      const cap = gtids.parseSet(child.branch.gtids);
      const after = gtidsAfter(shaped);
      if (!cap.contains(after)) {
        // Wholly past the branch point (the discarded future), or adding nothing before it.
        if (!cap.contains(before)) continue;
        const kept = after.intersect(cap);
        if (before.contains(kept)) continue;
        // Nothing is written on a history begun by a restore before its record (the server is
        // read-only until then): up to that moment the cut file is all there is. After a failover
        // the promoted server may have written before its streamer recorded the branch.
        const until = child.reason === "restore" ? child.startedAt : null;
        shaped = {
          ...shaped,
          gtidsAdded: kept.subtract(before).toString(),
          lastEventTime: until,
          lastCommitTime: until,
          lastGtid: sameDomain(kept, shaped.lastGtid),
          stopAt: cap.toString(),
        };
      }
    }
    result.push(shaped);
  }
  return result;
}

/** Whether `gtid` was written on history `id` itself, after its branch point. */
function inOwnPart(tree: HistoryTree, records: readonly BinlogRecord[], id: string, gtid: string): boolean {
  const history = findHistory(tree, id);
  const engine = records[0]?.engine ?? history?.engine ?? "mariadb";
  const gtids = gtidModel(engine);
  if (history && gtids.parseSet(history.branch.gtids).includes(gtid)) return false;
  const own = records.filter((record) => historyOfRecord(tree, record) === id);
  const holding = own.filter(
    (record) => gtidsAfter(record).includes(gtid) && !gtids.parseSet(record.gtidsBefore).includes(gtid),
  );
  if (holding.length === 0 || engine === "mysql") return holding.length > 0;
  // A MariaDB position holds a sequence number, not the server that wrote it: the transaction is
  // this history's when a server that writes it wrote that number.
  const [domain, server] = gtid.split("-");
  const writers = new Set(
    own
      .map((record) => record.lastGtid?.split("-"))
      .filter((parts) => parts?.[0] === domain)
      .map((parts) => parts![1]),
  );
  if (history) writers.add(String(history.serverId));
  return writers.has(server!);
}

/**
 * Whether history `id` holds the transaction `gtid`: written on it, or on an ancestor before the
 * branch point on the way (as far back as anything is shipped, or any branch point holds it).
 */
export function historyHolds(
  tree: HistoryTree,
  records: readonly BinlogRecord[],
  id: string,
  gtid: string,
): boolean {
  let node = id;
  let cap: GtidSet | undefined;
  for (;;) {
    if ((!cap || cap.includes(gtid)) && inOwnPart(tree, records, node, gtid)) return true;
    const history = findHistory(tree, node);
    if (!history) {
      if (cap) return cap.includes(gtid);
      const initial = records.filter((record) => historyOfRecord(tree, record) === INITIAL_HISTORY);
      return initial.some((record) => gtidModel(record.engine).parseSet(record.gtidsBefore).includes(gtid));
    }
    const branch = gtidModel(history.engine).parseSet(history.branch.gtids);
    if (!branch.includes(gtid)) return false;
    cap = cap ? cap.intersect(branch) : branch;
    node = history.parent;
  }
}

/** The GTIDs that stand for a set: each MariaDB domain's position, each MySQL uuid's newest. */
function frontier(set: GtidSet): string[] {
  if (set.engine === "mariadb") return set.toString().split(",").filter(Boolean);
  return set
    .toString()
    .split(",")
    .filter(Boolean)
    .map((stream) => {
      const parts = stream.split(":");
      const last = parts.at(-1)!.split("-").at(-1)!;
      // `uuid:1-5:7-9` or `uuid:tag:1-5`: the stream is everything before the intervals.
      const name = parts.filter((part) => !/^\d/.test(part)).join(":");
      return `${name}:${last}`;
    });
}

/**
 * The history a server at GTID set `gtids` is on, from what S3 holds: the deepest history that
 * holds all of it, the current one when several do or none can tell.
 */
export function historyOfGtids(tree: HistoryTree, records: readonly BinlogRecord[], gtids: GtidSet): string {
  if (tree.histories.length === 0) return INITIAL_HISTORY;
  const points = frontier(gtids);
  const holding = [INITIAL_HISTORY, ...tree.histories.map((history) => history.id)].filter((id) =>
    points.every((gtid) => historyHolds(tree, records, id, gtid)),
  );
  const current = currentHistory(tree);
  if (holding.length === 0 || holding.includes(current)) return current;
  return holding.sort((a, b) => lineage(tree, b).length - lineage(tree, a).length)[0]!;
}

/**
 * Whether a restore on history `id` may start from `backup`: the backup was taken on that history
 * or on an ancestor before the branch point on the way.
 */
export function backupServes(tree: HistoryTree, backup: BackupManifest, id: string): boolean {
  if (tree.histories.length === 0) return true;
  const path = lineage(tree, id);
  const ids = [INITIAL_HISTORY, ...path.map((history) => history.id)];
  const index = ids.indexOf(backup.history ?? INITIAL_HISTORY);
  if (index < 0) return false;
  const child = path[index];
  if (!child) return true;
  const gtids = gtidModel(backup.engine.name);
  return gtids.parseSet(child.branch.gtids).contains(gtids.parseSet(backup.binlog.gtidSet));
}

function describeHistory(tree: HistoryTree, id: string): string {
  const history = findHistory(tree, id);
  if (!history) return `${INITIAL_HISTORY} (the cluster's first)`;
  return `${id} (begun ${history.startedAt} by a ${history.reason} on ${history.host}, branching from ${history.parent} at ${history.branch.gtids || "(nothing)"})`;
}

/**
 * The history a restore target resolves on: the one asked for, else the current one; a GTID
 * written on another history only (its discarded future, a sibling) must be asked for, and one
 * written on two histories (the same GTID reused after a branch) is refused without a choice.
 */
export function resolveHistory(
  tree: HistoryTree,
  records: readonly BinlogRecord[],
  target: { readonly kind: string; readonly gtid?: string },
  asked?: string,
): string {
  if (asked !== undefined) {
    lineage(tree, asked);
    return asked;
  }
  const current = currentHistory(tree);
  if (target.kind !== "gtid" || tree.histories.length === 0) return current;
  const gtid = target.gtid!;
  const ids = [INITIAL_HISTORY, ...tree.histories.map((history) => history.id)];
  const onCurrent = historyHolds(tree, records, current, gtid);
  const currentPath = lineageIds(tree, current);
  // Each history whose own part holds the GTID is one transaction, unless the current history
  // reaches that part before its branch point (then it is the current history's too).
  const elsewhere = ids.filter((id) => {
    if (!inOwnPart(tree, records, id, gtid)) return false;
    if (!onCurrent || !currentPath.includes(id)) return true;
    const child = findHistory(tree, currentPath[currentPath.indexOf(id) + 1] ?? "");
    return child !== undefined && !gtidModel(child.engine).parseSet(child.branch.gtids).includes(gtid);
  });
  if (onCurrent && elsewhere.length === 0) return current;
  const holders = onCurrent ? [current, ...elsewhere.filter((id) => id !== current)] : elsewhere;
  if (holders.length === 0) return current;
  if (holders.length === 1) {
    throw refuse(
      `GTID ${gtid} is on history ${describeHistory(tree, holders[0]!)}, not on the current history ${current}: it belongs to a future that a later history discarded. To restore it anyway (forensics), name the history: \`--history ${holders[0]}\` (the Restore input's "history")`,
    );
  }
  throw refuse(
    `GTID ${gtid} exists on ${holders.length} histories, as different transactions: ${holders.map((id) => describeHistory(tree, id)).join("; ")}. Name the one to restore: \`--history ID\` (the Restore input's "history")`,
  );
}

/** What a server that is about to ship as the primary has executed, as its variables show it. */
export interface ServerGtids {
  /** MariaDB @@gtid_binlog_pos, MySQL @@gtid_executed. */
  readonly executed: string;
  /** MariaDB @@gtid_slave_pos: what it applied as a replica (empty on MySQL). */
  readonly replicated: string;
  readonly serverId: number;
  readonly serverUuid: string | null;
}

/**
 * What `shipped` (the current history's transactions, as other sources shipped them) holds that a
 * server lacks, and the point it branches at if it lacks any: what it received of that history.
 * MySQL sets are exact. A MariaDB position keeps one GTID per domain, so per domain: the server
 * has the shipped GTID when it wrote it itself (the same server id, at or past it), replicated it,
 * or its binlog is past it without writes of its own; its own writes since a promotion do not
 * count as having received what the old primary wrote under the same numbers.
 */
export function lostTransactions(
  shipped: GtidSet,
  server: ServerGtids,
): { readonly lost: GtidSet; readonly branch: GtidSet } {
  const gtids = gtidModel(shipped.engine);
  const executed = gtids.parseSet(server.executed);
  if (shipped.engine === "mysql") {
    const own = server.serverUuid?.toLowerCase();
    const received = server.executed
      .replace(/\s/g, "")
      .split(",")
      .filter((stream) => stream && stream.split(":")[0]!.toLowerCase() !== own)
      .join(",");
    return { lost: shipped.subtract(executed), branch: gtids.parseSet(received) };
  }
  const split = (set: string) =>
    new Map(
      set
        .split(",")
        .filter(Boolean)
        .map((gtid) => {
          const [domain, serverId, seq] = gtid.trim().split("-");
          return [domain!, { gtid: gtid.trim(), server: Number(serverId), seq: BigInt(seq!) }] as const;
        }),
    );
  const binlog = split(server.executed);
  const replicated = split(server.replicated);
  const shippedDomains = split(shipped.toString());
  let lost = gtids.empty();
  let branch = gtids.empty();
  for (const [domain, theirs] of shippedDomains) {
    const mine = binlog.get(domain);
    const applied = replicated.get(domain);
    const ownWrites = mine?.server === server.serverId;
    const has =
      (mine !== undefined && mine.seq >= theirs.seq && (!ownWrites || theirs.server === server.serverId)) ||
      (applied !== undefined && applied.seq >= theirs.seq);
    if (has) {
      branch = branch.add(theirs.gtid);
      continue;
    }
    lost = lost.add(theirs.gtid);
    const received = [applied, ownWrites ? undefined : mine]
      .filter((each) => each !== undefined)
      .sort((a, b) => (a.seq < b.seq ? 1 : -1))[0];
    if (received) branch = branch.add(received.gtid);
  }
  // Domains nothing shipped: what the server replicated there is part of the common past.
  for (const [domain, applied] of replicated)
    if (!shippedDomains.has(domain)) branch = branch.add(applied.gtid);
  return { lost, branch: lost.isEmpty() ? executed : branch };
}
