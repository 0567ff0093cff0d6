import { describe, expect, it } from "vitest";
import type { ChunkedRecord } from "../../core/binlog/chunk.js";
import type { BinlogRecord } from "../../core/binlog/manifest.js";
import type { BackupManifest } from "../../core/manifest.js";
import {
  bySource,
  findGaps,
  restorableWindow,
  stitchChain,
  type UnreplayableRecord,
} from "../../core/restorable-window.js";
import { parseRestoreTarget, planRestore } from "../../core/restore-plan.js";
import { planRetention } from "../../core/retention.js";
import { at, binlogRecord, primaryFiles } from "./binlog-records.js";

/**
 * A failover on a MariaDB cluster: db1 (server 1) is the primary and ships; db2 (server 2)
 * replicates with log_slave_updates, so its binlog holds db1's transactions too. At 10:30 db1 is
 * lost after 0-1-300; db2 is promoted and writes 0-2-301 onwards.
 */
const record = binlogRecord;

function backup(id: string, source: string, endTime: string, file: string, position: number, gtid: string) {
  return {
    backupId: id,
    type: "full",
    engine: { name: "mariadb", version: "10.11.19-MariaDB" },
    endTime,
    binlogSource: source,
    binlog: { file, position, gtidSet: gtid },
  } as BackupManifest;
}

const DB1 = "1-db1";
const DB2 = "2-db2";
/** db1's files: 1 holds 0-1-1…100 (10:00–10:10), 2 holds 101…200 (to 10:20), 3 holds 201…300 (to 10:30). */
const db1 = primaryFiles(DB1);
/** db2's file 7 began at 10:15 (0-1-150) and holds db1's 151…300, then its own 0-2-301…400 (to 10:40). */
const db2 = [
  record(DB2, 7, {
    gtidsBefore: "0-1-150",
    gtidsAdded: "0-2-400",
    firstGtid: "0-1-151",
    lastGtid: "0-2-400",
    firstEventTime: at(15),
    lastEventTime: at(40),
  }),
];
const beforeFailover = backup("20261121T100500Z-full-db1", DB1, at(5), "mariadb-bin.000001", 5000, "0-1-50");
const onReplica = backup("20261121T101700Z-full-db2", DB2, at(17), "mariadb-bin.000007", 9000, "0-1-170");

describe("one restorable window per cluster, stitched by GTID", () => {
  it("a backup on the old primary, a target after the failover: db1's files, then db2's from the first transaction db1 did not have", () => {
    const plan = planRestore(parseRestoreTarget(at(35)), [beforeFailover], [...db1, ...db2]);
    expect(plan.binlogs.map((b) => [b.manifest.source, b.file, b.startPosition])).toEqual([
      [DB1, "mariadb-bin.000001", 5000],
      [DB1, "mariadb-bin.000002", 4],
      [DB1, "mariadb-bin.000003", 4],
      // Entered by GTID: the position is found in the file, where 0-2-301 starts.
      [DB2, "mariadb-bin.000007", null],
    ]);
    const window = restorableWindow([beforeFailover], bySource([...db1, ...db2]));
    expect(window).toMatchObject({ to: at(40), toGtid: "0-2-400", sources: [DB1, DB2], gaps: [] });
  });

  it("a backup taken on the replica, whose host never shipped: the primary's binlogs, entered by GTID", () => {
    const plan = planRestore(parseRestoreTarget(at(25)), [onReplica], db1);
    expect(plan.binlogs.map((b) => [b.manifest.source, b.file, b.startPosition])).toEqual([
      [DB1, "mariadb-bin.000002", null],
      [DB1, "mariadb-bin.000003", 4],
    ]);
  });

  it("a backup on the replica after the failover goes on in its own binlog from its exact position", () => {
    const plan = planRestore(parseRestoreTarget("0-2-350"), [beforeFailover, onReplica], [...db1, ...db2]);
    expect(plan.backup.backupId).toBe(onReplica.backupId);
    expect(plan.binlogs.map((b) => [b.manifest.source, b.file, b.startPosition])).toEqual([
      [DB2, "mariadb-bin.000007", 9000],
    ]);
  });

  it("a file lost on one source is no gap when another source holds its transactions", () => {
    const withoutDb1File3 = [...db1.slice(0, 2), ...db2];
    expect(findGaps([beforeFailover], bySource(withoutDb1File3))).toEqual([]);
    const plan = planRestore(parseRestoreTarget(at(35)), [beforeFailover], withoutDb1File3);
    expect(plan.binlogs.map((b) => [b.manifest.source, b.file])).toEqual([
      [DB1, "mariadb-bin.000001"],
      [DB1, "mariadb-bin.000002"],
      [DB2, "mariadb-bin.000007"],
    ]);
  });

  it("a real gap (no source holds the next transactions) is named, and planning past it is refused", () => {
    const lateReplica = record(DB2, 8, {
      gtidsBefore: "0-1-250",
      gtidsAdded: "0-2-400",
      firstEventTime: at(25),
      lastEventTime: at(40),
    });
    const sources = [...db1.slice(0, 2), lateReplica];
    expect(findGaps([beforeFailover], bySource(sources))).toEqual([
      {
        after: `${DB1}/mariadb-bin.000002`,
        next: `${DB2}/mariadb-bin.000008`,
        reason: `no source shipped the transactions after 0-1-200 up to 0-1-250; the next shipped binlog, ${DB2}/mariadb-bin.000008, starts after them`,
      },
    ]);
    expect(() => planRestore(parseRestoreTarget(at(35)), [beforeFailover], sources)).toThrow(
      /past a gap in the binlogs after 1-db1\/mariadb-bin.000002: no source shipped the transactions after 0-1-200 up to 0-1-250/,
    );
    expect(planRestore(parseRestoreTarget(at(15)), [beforeFailover], sources).binlogs).toHaveLength(2);
  });

  it("a window that ends inside a file being written: its chunks are planned", () => {
    const streaming: ChunkedRecord = {
      ...record(DB2, 8, {
        gtidsBefore: "0-2-400",
        gtidsAdded: "0-2-460",
        lastGtid: "0-2-460",
        firstEventTime: at(40),
        lastEventTime: at(46),
      }),
      chunks: 12,
      chunkObjects: [],
    };
    const sources = [...db1, ...db2, streaming];
    const plan = planRestore(parseRestoreTarget("0-2-455"), [beforeFailover], sources);
    expect(plan.binlogs.at(-1)).toMatchObject({ file: "mariadb-bin.000008", startPosition: 4 });
    expect(restorableWindow([beforeFailover], bySource(sources))).toMatchObject({
      to: at(46),
      toGtid: "0-2-460",
    });
  });

  it("a chunk missing from the only source that shipped it is a gap naming the chunk", () => {
    const prefix: ChunkedRecord = {
      ...record(DB2, 8, {
        gtidsBefore: "0-2-400",
        gtidsAdded: "0-2-420",
        firstEventTime: at(40),
        lastEventTime: at(42),
      }),
      chunks: 3,
      chunkObjects: [],
    };
    const past: UnreplayableRecord = {
      ...record(DB2, 8, {
        gtidsBefore: "0-2-400",
        gtidsAdded: "0-2-460",
        firstEventTime: at(40),
        lastEventTime: at(46),
      }),
      unreplayable:
        "chunk 000003 of mariadb-bin.000008 from 2-db2 is missing, and chunks 4, 5 cannot be replayed without it",
    };
    const chain = stitchChain(beforeFailover, bySource([...db1, ...db2, prefix, past]));
    expect(chain.links.at(-1)?.record).toBe(prefix);
    expect(chain.gap?.reason).toMatch(
      /^chunk 000003 of mariadb-bin.000008 from 2-db2 is missing.*no other source holds the transactions after 0-2-420/,
    );
    expect(() =>
      planRestore(parseRestoreTarget("0-2-450"), [beforeFailover], [...db1, ...db2, prefix, past]),
    ).toThrow(/chunk 000003 of mariadb-bin.000008 from 2-db2 is missing/);
  });

  it("retention keeps what the oldest kept backup's chain needs from every source, and deletes older files of any source", () => {
    const newer = backup("20261121T102500Z-full-db2", DB2, at(25), "mariadb-bin.000007", 12000, "0-1-250");
    const decision = planRetention(
      [beforeFailover, onReplica, newer],
      bySource([...db1, ...db2]),
      { fullBackups: 2, pitrDays: 0 },
      new Date(at(60)),
    );
    expect(decision.deleteBackups).toEqual([beforeFailover.backupId]);
    // The oldest kept backup (on db2, 0-1-170) replays from db2's file 7. db1's file 1 (…100) is
    // entirely before it; file 2 (101…200) holds transactions after it and is kept.
    expect(decision.deleteBinlogs.sort()).toEqual([`${DB1}/mariadb-bin.000001`]);
  });

  it("MySQL: GTID sets across a failover (the new primary's own uuid), stitched through core's GTID type", () => {
    const A = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B = "4f22ab58-82db-22f2-af44-d91bb0530673";
    const mysql = (source: string, n: number, fields: Partial<BinlogRecord>) =>
      record(source, n, { engine: "mysql", ...fields });
    // db1 (uuid A) wrote A:1-300 in binlog.1–3; db2 replicated A:151-300 into its binlog.7, then
    // after the failover wrote B:1-100 there.
    const oldPrimary = [1, 2, 3].map((n) =>
      mysql(DB1, n, {
        gtidsBefore: n > 1 ? `${A}:1-${100 * (n - 1)}` : "",
        gtidsAdded: `${A}:${100 * (n - 1) + 1}-${100 * n}`,
        lastGtid: `${A}:${100 * n}`,
        firstEventTime: at(10 * (n - 1)),
        lastEventTime: at(10 * n),
        lastCommitTime: at(10 * n),
      }),
    );
    const promoted = mysql(DB2, 7, {
      gtidsBefore: `${A}:1-150`,
      gtidsAdded: `${A}:151-300,${B}:1-100`,
      lastGtid: `${B}:100`,
      firstEventTime: at(15),
      lastEventTime: at(40),
      lastCommitTime: at(40),
    });
    const onDb1 = {
      ...backup("20261121T100500Z-full-db1", DB1, at(5), "mariadb-bin.000001", 900, `${A}:1-50`),
      engine: { name: "mysql", version: "8.0.45" },
    } as BackupManifest;
    const plan = planRestore(parseRestoreTarget(`${B}:60`), [onDb1], [...oldPrimary, promoted]);
    expect(plan.binlogs.map((b) => [b.manifest.source, b.file, b.startPosition])).toEqual([
      [DB1, "mariadb-bin.000001", 900],
      [DB1, "mariadb-bin.000002", 4],
      [DB1, "mariadb-bin.000003", 4],
      [DB2, "mariadb-bin.000007", null],
    ]);
    expect(restorableWindow([onDb1], bySource([...oldPrimary, promoted]))).toMatchObject({
      toGtid: `${A}:1-300,${B}:1-100`,
      gaps: [],
    });
    // Without db1's file 2, db2's file 7 needs A:1-150 before it: a gap naming what is missing.
    expect(findGaps([onDb1], bySource([oldPrimary[0]!, promoted]))[0]?.reason).toBe(
      `no source shipped the transactions after ${A}:1-100 up to ${A}:101-150; the next shipped binlog, ${DB2}/mariadb-bin.000007, starts after them`,
    );
  });
});
