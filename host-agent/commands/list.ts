import { byBackupId, chainOf } from "../../core/backup-chain.js";
import { isChunked } from "../../core/binlog/chunk.js";
import type { DoctorCheck } from "../../core/contracts/host-checks.js";
import {
  backupServes,
  currentHistory,
  type HistoryRecord,
  type HistoryTree,
  historyOfRecord,
  INITIAL_HISTORY,
  recordsOnHistory,
} from "../../core/history.js";
import { bySource, type RestorableWindow, restorableWindow } from "../../core/restorable-window.js";
import type { Catalog } from "../../core/store/catalog.js";
import { readCatalog } from "../../core/store/catalog.js";
import { readHistoryTree } from "../../core/store/histories.js";
import { readHostChecks } from "../../core/store/host-checks.js";
import { type ListedRestoreProgress, readRestoreProgress } from "../../core/store/restore-progress.js";
import { s3Client } from "../clients.js";
import type { AgentContext } from "../context.js";

export interface ListResult {
  readonly backups: {
    backupId: string;
    type: string;
    host: string;
    endTime: string;
    storedBytes: number;
    binlog: { file: string; position: number; gtidSet: string };
    /** An incremental's base. */
    parentBackupId?: string;
    /** Its place in its chain: 0 for a full backup, n for the nth incremental after it; null when broken. */
    chain: number | null;
    /** Why a broken chain cannot be restored (the first missing link). */
    broken?: string;
  }[];
  readonly incompleteBackups: string[];
  readonly binlogs: {
    source: string;
    files: number;
    first: string | null;
    last: string | null;
    /** The file the source is writing, shipped so far as chunks (binlog-stream). */
    streaming: { file: string; chunks: number; lastGtid: string | null } | null;
    /**
     * Closed files held only as chunks: not shipped whole, or shipped but not indexed yet. A
     * restore still reaches them; `since` is when the oldest one's last chunk was shipped.
     */
    chunkOnly: { files: number; since: string | null };
    lastEventTime: string | null;
  }[];
  /** The current history's window, over every source's binlogs linked by GTID. */
  readonly window: RestorableWindow;
  /** The history the cluster's primary writes now (core/history). */
  readonly currentHistory: string;
  /** Every history, oldest first, each with its own window: a tree by `parent`. */
  readonly histories: ListedHistory[];
  /** Two hosts acting as primary: a history other than the current one still written after it began. */
  readonly conflicts: string[];
  /** The newest point a restore can reach now, and how far behind the present it is. */
  readonly latestRestorableTime: string | null;
  readonly lagSeconds: number | null;
  /**
   * Each host's latest doctor record (the install association's, every 30 minutes): whether it
   * passed, what failed and how to fix it, and `stale` when it has not run there for hours.
   */
  readonly hosts: {
    host: string;
    checkedAt: string;
    ok: boolean;
    stale: boolean;
    failed: DoctorCheck[];
  }[];
  /** Restores under way (and the last few that ended): phase, share done, time left. */
  readonly restores: ListedRestoreProgress[];
}

export interface ListedHistory {
  readonly id: string;
  readonly parent: string | null;
  readonly current: boolean;
  /** Where it branched from its parent (GTIDs and time), and why. */
  readonly branch: { gtids: string; time: string | null } | null;
  readonly reason: HistoryRecord["reason"] | null;
  readonly startedAt: string | null;
  readonly host: string | null;
  /** A lossy failover: what the parent had shipped that this history never received. */
  readonly lost?: string;
  /** The sources whose binlogs belong to it. */
  readonly sources: string[];
  /** What a restore on it (`--history ID`) can reach. */
  readonly window: RestorableWindow;
}

const MiB = 1024 * 1024;

/** Each history with its window, and the hosts that still write a history that is not current. */
function describeHistories(
  tree: HistoryTree,
  catalog: Catalog,
): { histories: ListedHistory[]; conflicts: string[] } {
  const records = [...catalog.binlogs.values()].flat();
  const current = currentHistory(tree);
  const ids = [INITIAL_HISTORY, ...tree.histories.map((history) => history.id)];
  const histories = ids.map((id): ListedHistory => {
    const record = tree.histories.find((history) => history.id === id);
    const own = records.filter((binlog) => historyOfRecord(tree, binlog) === id);
    return {
      id,
      parent: record?.parent ?? null,
      current: id === current,
      branch: record?.branch ?? null,
      reason: record?.reason ?? null,
      startedAt: record?.startedAt ?? null,
      host: record?.host ?? null,
      ...(record?.lost ? { lost: record.lost } : {}),
      sources: [...new Set(own.map((binlog) => binlog.source))],
      window: restorableWindow(
        catalog.backups.filter((backup) => backupServes(tree, backup, id)),
        bySource(recordsOnHistory(tree, id, records)),
      ),
    };
  });
  const begun = tree.histories.find((history) => history.id === current)?.startedAt;
  const conflicts = begun
    ? histories
        .filter((history) => history.id !== current)
        .flatMap((history) => {
          // Event times have whole seconds (MariaDB): only a later second is surely after it began.
          const late = records.filter(
            (binlog) =>
              historyOfRecord(tree, binlog) === history.id &&
              binlog.lastEventTime !== null &&
              Math.floor(Date.parse(binlog.lastEventTime) / 1000) > Math.floor(Date.parse(begun) / 1000),
          );
          return late.length === 0
            ? []
            : [
                `history ${history.id} is still written after the current history ${current} began (${[...new Set(late.map((binlog) => binlog.source))].join(", ")}, last event ${late
                  .map((binlog) => binlog.lastEventTime!)
                  .sort()
                  .at(-1)}): two hosts act as primary; retire the old one or restore it as a replica`,
              ];
        })
    : [];
  return { histories, conflicts };
}

/** A table for people, on stderr: stdout keeps its one JSON result. */
function printTable(result: ListResult): void {
  const lines = [
    "BACKUPS",
    "  id                                            type     consistent at (end)        stored MiB  binlog position / GTID",
  ];
  for (const b of result.backups) {
    // An incremental is indented under its base, one step per link of its chain.
    const id = b.type === "incremental" ? `${"  ".repeat(b.chain ?? 1)}└ ${b.backupId}` : b.backupId;
    const type = b.type === "incremental" ? "incr" : b.type;
    lines.push(
      `  ${id.padEnd(45)} ${type.padEnd(8)} ${b.endTime.padEnd(26)} ${(b.storedBytes / MiB).toFixed(1).padStart(10)}  ${b.binlog.file}:${b.binlog.position} ${b.binlog.gtidSet}`,
    );
    if (b.broken) lines.push(`    (cannot be restored: ${b.broken})`);
  }
  for (const prefix of result.incompleteBackups) lines.push(`  (incomplete, never used) ${prefix}`);
  lines.push("BINLOGS");
  for (const b of result.binlogs) {
    const streaming = b.streaming ? `, streaming ${b.streaming.file} (${b.streaming.chunks} chunks)` : "";
    const chunkOnly =
      b.chunkOnly.files > 0
        ? `, ${b.chunkOnly.files} closed file(s) held only as chunks since ${b.chunkOnly.since} (not shipped whole or not indexed yet)`
        : "";
    lines.push(
      `  ${b.source}: ${b.files} file(s) ${b.first ?? "-"} … ${b.last ?? "-"}${streaming}${chunkOnly}, last event ${b.lastEventTime ?? "-"}`,
    );
  }
  lines.push("HISTORIES");
  const children = (parent: string | null, depth: number) => {
    for (const history of result.histories.filter((each) => each.parent === parent)) {
      const branch = history.branch
        ? `, branched at ${history.branch.gtids || "(nothing)"}${history.branch.time ? ` (${history.branch.time})` : ""} by a ${history.reason} on ${history.host}`
        : "";
      const lost = history.lost ? `, lost ${history.lost} of its parent` : "";
      lines.push(
        `  ${"  ".repeat(depth)}${history.id}${history.current ? " (current)" : ""}${branch}${lost}: ${history.window.from ?? "-"} → ${history.window.to ?? "-"} (GTID ${history.window.toGtid ?? "-"})`,
      );
      children(history.id, depth + 1);
    }
  };
  children(null, 0);
  for (const conflict of result.conflicts) lines.push(`  CONFLICT: ${conflict}`);
  const w = result.window;
  lines.push(`RESTORABLE WINDOW (cluster, current history ${result.currentHistory})`);
  lines.push(
    `  ${w.from ?? "-"} → ${w.to ?? "-"} (GTID ${w.toGtid ?? "-"}) through ${w.sources.join(", ") || "no binlogs"}`,
  );
  if (result.lagSeconds !== null) lines.push(`  latest restorable time is ${result.lagSeconds} s behind now`);
  for (const gap of w.gaps) lines.push(`  GAP after ${gap.after}: ${gap.reason}; the window is cut there`);
  if (result.restores.length > 0) lines.push("RESTORES (newest first)");
  for (const r of result.restores) {
    const state = r.stalled ? "STALLED (no progress for 10 min: is its agent running?)" : r.state;
    const now =
      r.state === "running" && r.phase
        ? `, ${r.phase} ${r.percent === null ? "" : `${r.percent}%`}${r.etaSeconds === null ? "" : `, about ${Math.ceil(r.etaSeconds)} s left in it`}`
        : "";
    const phases = r.phases
      .map((p) => `${p.phase} ${p.seconds === null ? "…" : `${p.seconds} s`}`)
      .join(", ");
    lines.push(`  ${r.restoreId} on ${r.host} (${r.kind}): ${state}${now}; ${phases}`);
  }
  lines.push("HOSTS (doctor, run by the install association)");
  for (const h of result.hosts) {
    const when = `checked ${h.checkedAt || "never"}${h.stale ? ", STALE: the association has not run there since" : ""}`;
    lines.push(`  ${h.host}: ${h.ok ? "ok" : `FAILS ${h.failed.length} check(s)`} (${when})`);
    for (const c of h.failed) lines.push(`    ${c.check}: ${c.found}; fix: ${c.fix ?? "see the message"}`);
  }
  process.stderr.write(`${lines.join("\n")}\n`);
}

/** `rewind-agent list [--json]`: complete backups, shipped binlogs, and what a restore can reach. */
export async function list(context: AgentContext, json: boolean): Promise<ListResult> {
  // S3 is checked for every indexed file: list shows what a restore could really use.
  const client = s3Client(context.config);
  const catalog = await readCatalog(client, context.config.bucket, context.location, {
    checkPresence: true,
  });
  const tree = await readHistoryTree(client, context.config.bucket, context.location);
  const { histories, conflicts } = describeHistories(tree, catalog);
  const byId = byBackupId(catalog.backups);
  const window = histories.find((history) => history.current)!.window;
  const result: ListResult = {
    backups: catalog.backups.map((b) => {
      const chain = chainOf(b, byId);
      return {
        backupId: b.backupId,
        type: b.type,
        host: b.host,
        endTime: b.endTime,
        storedBytes: b.storedBytes,
        binlog: b.binlog,
        ...(b.parentBackupId ? { parentBackupId: b.parentBackupId } : {}),
        chain: chain.complete ? chain.links.length - 1 : null,
        ...(chain.complete ? {} : { broken: chain.reason }),
      };
    }),
    incompleteBackups: catalog.incompleteBackups,
    binlogs: [...catalog.binlogs].map(([source, records]) => {
      const files = records.filter((record) => !isChunked(record));
      const streaming = records.filter(isChunked).at(-1);
      const closedChunked = records.filter(
        (record) => isChunked(record) && record.file !== records.at(-1)?.file,
      );
      const chunkOnlyNames = [...new Set(closedChunked.map((record) => record.file))];
      return {
        source,
        files: files.length,
        first: files[0]?.file ?? null,
        last: files.at(-1)?.file ?? null,
        streaming: streaming
          ? { file: streaming.file, chunks: streaming.chunks, lastGtid: streaming.lastGtid }
          : null,
        chunkOnly: {
          files: chunkOnlyNames.length,
          since: closedChunked.map((record) => record.shippedAt).sort()[0] ?? null,
        },
        lastEventTime: records.at(-1)?.lastEventTime ?? null,
      };
    }),
    window,
    currentHistory: currentHistory(tree),
    histories,
    conflicts,
    latestRestorableTime: window.to,
    lagSeconds: window.to === null ? null : Math.round((Date.now() - Date.parse(window.to)) / 1000),
    restores: await readRestoreProgress(client, context.config.bucket, context.location),
    hosts: (await readHostChecks(client, context.config.bucket, context.location)).map((h) => ({
      host: h.host,
      checkedAt: h.checkedAt,
      ok: h.ok,
      stale: h.stale,
      failed: h.checks.filter((c) => !c.ok),
    })),
  };
  if (!json) printTable(result);
  return result;
}
