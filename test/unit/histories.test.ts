import { describe, expect, it } from "vitest";
import type { BinlogRecord } from "../../core/binlog/manifest.js";
import { mariadbGtids } from "../../core/gtid/mariadb.js";
import { mysqlGtids } from "../../core/gtid/mysql.js";
import {
  type HistoryRecord,
  type HistoryWriter,
  historyOfGtids,
  historyTree,
  INITIAL_HISTORY,
  lostTransactions,
  recordsOnHistory,
} from "../../core/history.js";
import type { BackupManifest } from "../../core/manifest.js";
import { bySource, restorableWindow } from "../../core/restorable-window.js";
import { parseRestoreTarget, planRestore } from "../../core/restore-plan.js";
import { planRetention } from "../../core/retention.js";
import { at, binlogRecord, primaryFiles } from "./binlog-records.js";

/**
 * Roll back and carry on (issue 22), MariaDB: P (server 1) writes 0-1-1…300 in three files, one
 * every ten minutes from 10:00; a bad DELETE is 0-1-250 at 10:25. S (server 3) is restored to
 * 0-1-249 (10:24:59), promoted, and writes 0-3-250 onwards from 10:40: the same sequence numbers
 * P's discarded future used. Without histories the window ran along P's future.
 */
const record = binlogRecord;
const file = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;

function backup(id: string, source: string, endTime: string, position: string, history?: string) {
  return {
    backupId: id,
    type: "full",
    engine: { name: position.includes(":") ? "mysql" : "mariadb", version: "10.11.19-MariaDB" },
    endTime,
    binlogSource: source,
    binlog: { file: file(1), position: 5000, gtidSet: position },
    ...(history ? { history } : {}),
  } as BackupManifest;
}

const P = "1-p";
const S = "3-s";
const p = primaryFiles(P);
/** S's restored server did not binlog the replay: its first file starts with nothing before it. */
const s = (last: number) =>
  record(S, 1, {
    gtidsAdded: `0-3-${last}`,
    firstGtid: "0-3-250",
    lastGtid: `0-3-${last}`,
    firstEventTime: at(40),
    lastEventTime: at(40 + (last - 250) / 10),
  });
const H1 = "20261121T103000Z-s";
const rollBack: HistoryRecord = {
  formatVersion: 1,
  cluster: "orders",
  engine: "mariadb",
  id: H1,
  parent: INITIAL_HISTORY,
  branch: { gtids: "0-1-249", time: at(24, 59) },
  startedAt: at(30),
  reason: "restore",
  host: "s",
  source: S,
  serverId: 3,
  serverUuid: null,
};
const writer = (history: string, source: string, n: number, since = at(30)): HistoryWriter => ({
  formatVersion: 1,
  cluster: "orders",
  history,
  source,
  host: source,
  file: file(n),
  since,
});
const tree = historyTree([rollBack], [writer(H1, S, 1)]);
const onP = backup("20261121T100500Z-full-p", P, at(5), "0-1-50");
const links = (plan: ReturnType<typeof planRestore>) =>
  plan.binlogs.map((b) => [b.manifest.source, b.file, b.startPosition, b.stopAt]);

describe("histories: roll back and carry on", () => {
  it("before the fix's branch record, the window ran along P's discarded future (the silent wrong restore)", () => {
    const window = restorableWindow([onP], bySource([...p, s(270)]));
    expect(window.toGtid).toBe("0-1-300");
  });

  it("on the current history, a time after the roll-back replays P up to the branch point, then S", () => {
    const plan = planRestore(parseRestoreTarget(at(45)), [onP], [...p, s(320)], { tree });
    expect(plan.history).toBe(H1);
    expect(links(plan)).toEqual([
      [P, file(1), 5000, null],
      [P, file(2), 4, null],
      [P, file(3), 4, "0-1-249"],
      [S, file(1), 4, null],
    ]);
  });

  it("S having written less than P's discarded future changes nothing: latest is S's newest GTID", () => {
    const records = [...p, s(270)];
    const window = restorableWindow([onP], bySource(recordsOn(records)));
    expect(window).toMatchObject({ toGtid: "0-3-270", sources: [P, S], gaps: [] });
    const plan = planRestore(parseRestoreTarget("0-3-270"), [onP], records, { tree });
    expect(links(plan).at(-1)).toEqual([S, file(1), 4, null]);
  });

  it("a time after the branch, before S's promotion: P to the branch point is all; after the promotion S's file follows", () => {
    const before = planRestore(parseRestoreTarget(at(28)), [onP], [...p, s(320)], { tree });
    expect(links(before).map((link) => link[3])).toEqual([null, null, "0-1-249"]);
    const after = planRestore(parseRestoreTarget(at(35)), [onP], [...p, s(320)], { tree });
    expect(links(after).map((link) => link[3])).toEqual([null, null, "0-1-249", null]);
  });

  it("a GTID of P's discarded future is refused unless its history is named; then P's files, whole", () => {
    expect(() => planRestore(parseRestoreTarget("0-1-280"), [onP], [...p, s(320)], { tree })).toThrow(
      /0-1-280 is on history initial .* not on the current history 20261121T103000Z-s.*--history initial/,
    );
    const plan = planRestore(parseRestoreTarget("0-1-280"), [onP], [...p, s(320)], {
      tree,
      history: INITIAL_HISTORY,
    });
    expect(links(plan)).toEqual([
      [P, file(1), 5000, null],
      [P, file(2), 4, null],
      [P, file(3), 4, null],
    ]);
    const byTime = planRestore(parseRestoreTarget(at(28)), [onP], [...p, s(320)], {
      tree,
      history: INITIAL_HISTORY,
    });
    expect(byTime.binlogs.map((b) => b.manifest.source)).toEqual([P, P, P]);
  });

  it("a GTID of the common past resolves on the current history", () => {
    const plan = planRestore(parseRestoreTarget("0-1-150"), [onP], [...p, s(320)], { tree });
    expect(plan.history).toBe(H1);
    expect(links(plan)).toEqual([
      [P, file(1), 5000, null],
      [P, file(2), 4, null],
    ]);
  });

  it("a backup of P's discarded future never seeds a restore on the current history; one on S does", () => {
    const late = backup("20261121T102800Z-full-p", P, at(28), "0-1-280");
    const onS = {
      ...backup("20261121T104500Z-full-s", S, at(45), "0-3-290", H1),
      binlog: { file: file(1), position: 7000, gtidSet: "0-3-290" },
    };
    const plan = planRestore(parseRestoreTarget(at(35)), [onP, late], [...p, s(320)], { tree });
    expect(plan.backup.backupId).toBe(onP.backupId);
    const later = planRestore(parseRestoreTarget("0-3-300"), [onP, late, onS], [...p, s(320)], { tree });
    expect(later.backup.backupId).toBe(onS.backupId);
    expect(links(later)).toEqual([[S, file(1), 7000, null]]);
    expect(() => planRestore(parseRestoreTarget(at(35)), [late], [...p, s(320)], { tree })).toThrow(
      /no full backup serves history 20261121T103000Z-s/,
    );
    expect(historyOfGtids(tree, [...p, s(320)], mariadbGtids.parseSet("0-1-280"))).toBe(INITIAL_HISTORY);
    expect(historyOfGtids(tree, [...p, s(320)], mariadbGtids.parseSet("0-3-300"))).toBe(H1);
  });

  it("a roll-back in place (P restored and promoted, the same server id): a GTID on both histories is refused naming both", () => {
    const inPlace = { ...rollBack, host: "p", source: P, serverId: 1 };
    const again = record(P, 4, {
      gtidsAdded: "0-1-280",
      firstGtid: "0-1-250",
      lastGtid: "0-1-280",
      firstEventTime: at(40),
      lastEventTime: at(43),
    });
    const both = historyTree([inPlace], [writer(H1, P, 4)]);
    expect(() => planRestore(parseRestoreTarget("0-1-260"), [onP], [...p, again], { tree: both })).toThrow(
      /0-1-260 exists on 2 histories.*20261121T103000Z-s.*initial/,
    );
    const plan = planRestore(parseRestoreTarget("0-1-260"), [onP], [...p, again], {
      tree: both,
      history: H1,
    });
    expect(links(plan).slice(2)).toEqual([
      [P, file(3), 4, "0-1-249"],
      [P, file(4), 4, null],
    ]);
  });

  it("MySQL: a roll-back onto a server with its own uuid", () => {
    const A = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B = "5f22ab58-82db-22f2-af44-d91bb0530673";
    const mysql = (source: string, n: number, fields: Partial<BinlogRecord>) =>
      record(source, n, { engine: "mysql", file: `binlog.${String(n).padStart(6, "0")}`, ...fields });
    const pm = [1, 2, 3].map((n) =>
      mysql(A, n, {
        gtidsBefore: n > 1 ? `${A}:1-${100 * (n - 1)}` : "",
        gtidsAdded: `${A}:${100 * (n - 1) + 1}-${100 * n}`,
        lastGtid: `${A}:${100 * n}`,
        firstEventTime: at(10 * (n - 1)),
        lastEventTime: at(10 * n),
      }),
    );
    const sm = mysql(B, 1, {
      gtidsBefore: `${A}:1-249`,
      gtidsAdded: `${B}:1-70`,
      lastGtid: `${B}:70`,
      firstEventTime: at(40),
      lastEventTime: at(47),
    });
    const branch: HistoryRecord = {
      ...rollBack,
      engine: "mysql",
      source: B,
      serverUuid: B,
      branch: { gtids: `${A}:1-249`, time: at(24, 59) },
    };
    const mysqlTree = historyTree([branch], [{ ...writer(H1, B, 1), file: "binlog.000001" }]);
    const start = {
      ...backup("20261121T100500Z-full-a", A, at(5), `${A}:1-50`),
      engine: { name: "mysql", version: "8.0.45" },
    } as BackupManifest;
    const plan = planRestore(parseRestoreTarget(at(45)), [start], [...pm, sm], { tree: mysqlTree });
    expect(plan.binlogs.map((b) => [b.manifest.source, b.stopAt])).toEqual([
      [A, null],
      [A, null],
      [A, `${A}:1-249`],
      [B, null],
    ]);
    // Without the branch record, B's file follows P's whole future: the mixed history.
    const mixed = planRestore(parseRestoreTarget(at(45)), [start], [...pm, sm]);
    expect(mixed.binlogs.map((b) => b.stopAt)).toEqual([null, null, null, null]);
    expect(() =>
      planRestore(parseRestoreTarget(`${A}:280`), [start], [...pm, sm], { tree: mysqlTree }),
    ).toThrow(/is on history initial/);
  });
});

const recordsOn = (records: BinlogRecord[]) => recordsOnHistory(tree, H1, records);

describe("histories: retention", () => {
  const late = backup("20261121T102800Z-full-p", P, at(28), "0-1-280");
  const onS = {
    ...backup("20261121T104500Z-full-s", S, at(45), "0-3-290", H1),
    binlog: { file: file(1), position: 7000, gtidSet: "0-3-290" },
  };
  const sources = bySource([...p, s(320)]);

  it("within the window every history a kept backup serves keeps its files, P's discarded future included", () => {
    const decision = planRetention(
      [onP, late, onS],
      sources,
      { fullBackups: 1, pitrDays: 30 },
      new Date(at(60)),
      tree,
    );
    expect(decision.refused).toBeNull();
    expect(decision.deleteBackups).toEqual([]);
    expect(decision.deleteBinlogs).toEqual([]);
  });

  it("past it, the current history's policy keeps S's backup; P's backups and files go, S's file stays", () => {
    const tenDaysLater = new Date(Date.parse(at(0)) + 10 * 86_400_000);
    const decision = planRetention(
      [onP, late, onS],
      sources,
      { fullBackups: 1, pitrDays: 1 },
      tenDaysLater,
      tree,
    );
    expect(decision.refused).toBeNull();
    expect(decision.keepBackups).toEqual([onS.backupId]);
    expect(decision.deleteBackups.sort()).toEqual([onP.backupId, late.backupId].sort());
    expect(decision.deleteBinlogs).toEqual([`${P}/${file(1)}`, `${P}/${file(2)}`, `${P}/${file(3)}`]);
  });

  it("no backup serves the current history: nothing is deleted", () => {
    const tenDaysLater = new Date(Date.parse(at(0)) + 10 * 86_400_000);
    const decision = planRetention([late], sources, { fullBackups: 1, pitrDays: 1 }, tenDaysLater, tree);
    expect(decision.refused).toMatch(/no full backup serves the current history/);
  });
});

describe("histories: what a promoted server lacks", () => {
  it("MariaDB: a replica that missed the old primary's last shipped transactions and has written its own", () => {
    const shipped = mariadbGtids.parseSet("0-1-1373");
    const lossy = lostTransactions(shipped, {
      executed: "0-2-1100",
      replicated: "0-1-1073",
      serverId: 2,
      serverUuid: null,
    });
    expect(lossy.lost.toString()).toBe("0-1-1373");
    expect(lossy.branch.toString()).toBe("0-1-1073");
    // Even once its own sequence numbers pass the lost ones.
    expect(
      lostTransactions(shipped, {
        executed: "0-2-1500",
        replicated: "0-1-1073",
        serverId: 2,
        serverUuid: null,
      }).lost.isEmpty(),
    ).toBe(false);
  });

  it("MariaDB: a replica that had everything joins; an old primary with a stale replica position is not lossy", () => {
    const shipped = mariadbGtids.parseSet("0-1-1373");
    expect(
      lostTransactions(shipped, {
        executed: "0-2-1400",
        replicated: "0-1-1373",
        serverId: 2,
        serverUuid: null,
      }).lost.isEmpty(),
    ).toBe(true);
    expect(
      lostTransactions(shipped, {
        executed: "0-1-1380",
        replicated: "0-2-50",
        serverId: 1,
        serverUuid: null,
      }).lost.isEmpty(),
    ).toBe(true);
  });

  it("MySQL: the executed set less the server's own uuid is the branch point", () => {
    const A = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B = "5f22ab58-82db-22f2-af44-d91bb0530673";
    const result = lostTransactions(mysqlGtids.parseSet(`${A}:1-1373`), {
      executed: `${A}:1-1073,\n${B}:1-20`,
      replicated: "",
      serverId: 2,
      serverUuid: B,
    });
    expect(result.lost.toString()).toBe(`${A}:1074-1373`);
    expect(result.branch.toString()).toBe(`${A}:1-1073`);
  });
});
