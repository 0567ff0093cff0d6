import { describe, expect, it } from "vitest";
import { byBackupId, chainOf, restorableBackups } from "../../core/backup-chain.js";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import type { BackupManifest } from "../../core/manifest.js";
import { parseRestoreTarget, planRestore } from "../../core/restore-plan.js";
import { planRetention } from "../../core/retention.js";

const SOURCE = "1-db1";
const file = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;
const minute = (n: number, second = 30) =>
  `2026-11-21T10:${String(n).padStart(2, "0")}:${String(second).padStart(2, "0")}.000Z`;

/**
 * A backup ending at minute n, at position 500 of binlog n (GTIDs up to 0-1-(10n+5)); an
 * incremental's LSN range starts where its parent's ends.
 */
function backup(n: number, parent?: BackupManifest, overrides: Partial<BackupManifest> = {}): BackupManifest {
  const type = parent ? "incremental" : "full";
  return {
    backupId: `20261121T10${String(n).padStart(2, "0")}30Z-${type}-db1`,
    cluster: "orders",
    type,
    parentBackupId: parent?.backupId ?? null,
    host: "db1",
    serverId: 1,
    serverUuid: null,
    engine: { name: "mariadb", version: "10.11.19-MariaDB" },
    startTime: minute(n, 10),
    endTime: minute(n),
    binlogSource: SOURCE,
    binlog: { file: file(n), position: 500, gtidSet: `0-1-${10 * n + 5}` },
    lsn: { fromLsn: parent ? parent.lsn.toLsn : "0", toLsn: String(1000 * n), lastLsn: String(1000 * n) },
    ...overrides,
  } as BackupManifest;
}

/** Binlog n holds GTIDs 0-1-(10n+1) … 0-1-(10n+10), written over minute n. */
function binlog(n: number): BinlogManifest {
  return {
    engine: "mariadb",
    file: file(n),
    source: SOURCE,
    previousFile: n > 1 ? file(n - 1) : null,
    gtidsBefore: n > 1 ? `0-1-${10 * n}` : "",
    firstGtid: `0-1-${10 * n + 1}`,
    lastGtid: `0-1-${10 * n + 10}`,
    gtidsAdded: `0-1-${10 * n + 10}`,
    lastCommitTime: null,
    firstEventTime: minute(n, 0),
    lastEventTime: minute(n, 59),
    shippedAt: minute(n, 59),
    sha256: "0".repeat(64),
  } as BinlogManifest;
}

const full = backup(1);
const inc2 = backup(2, full);
const inc3 = backup(3, inc2);
const binlogs = [1, 2, 3, 4].map(binlog);

describe("incremental chains", () => {
  it("a chain is the full backup then each incremental, oldest first", () => {
    const chain = chainOf(inc3, byBackupId([full, inc2, inc3]));
    expect(chain.complete).toBe(true);
    expect(chain.links.map((b) => b.backupId)).toEqual([full.backupId, inc2.backupId, inc3.backupId]);
  });

  it("a link whose LSN range does not start where its parent's ends breaks the chain", () => {
    const stray = backup(3, inc2, { lsn: { fromLsn: "1500", toLsn: "3000", lastLsn: "3000" } });
    const chain = chainOf(stray, byBackupId([full, inc2, stray]));
    expect(chain.complete).toBe(false);
    expect(!chain.complete && chain.reason).toMatch(/starts at LSN 1500, but its parent .* ends at LSN 2000/);
  });

  it("a link of another server breaks the chain", () => {
    const other = backup(3, inc2, { host: "db2", serverId: 2 });
    expect(restorableBackups([full, inc2, other]).broken[0]?.reason).toMatch(/not of the same server/);
  });

  it("plans through the newest chain and replays binlogs from its last link's exact position", () => {
    const plan = planRestore(parseRestoreTarget(minute(4, 20)), [full, inc2, inc3], binlogs);
    expect(plan.backup.backupId).toBe(inc3.backupId);
    expect(plan.chain.map((b) => b.backupId)).toEqual([full.backupId, inc2.backupId, inc3.backupId]);
    expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([
      [file(3), 500],
      [file(4), 4],
    ]);
  });

  it("a target between two links stops at the earlier one", () => {
    const plan = planRestore(parseRestoreTarget(minute(2, 45)), [full, inc2, inc3], binlogs);
    expect(plan.chain.map((b) => b.backupId)).toEqual([full.backupId, inc2.backupId]);
    expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([[file(2), 500]]);
  });

  it("a missing link: the binlogs from an older backup still reach the target", () => {
    const plan = planRestore(parseRestoreTarget(minute(4, 20)), [full, inc3], binlogs);
    expect(plan.backup.backupId).toBe(full.backupId);
    expect(plan.chain).toHaveLength(1);
    expect(plan.binlogs[0]).toMatchObject({ file: file(1), startPosition: 500 });
  });

  it("a missing link a target needs (the binlogs before it are gone) is refused naming it", () => {
    expect(() => planRestore(parseRestoreTarget(minute(4, 20)), [full, inc3], [1, 3, 4].map(binlog))).toThrow(
      new RegExp(
        `newest reachable point is ${minute(1, 59)}.*needs ${inc2.backupId} \\(to restore ${inc3.backupId}`,
      ),
    );
  });

  it("a backup target whose chain lacks a link is refused naming it and the newest backup that restores", () => {
    expect(() => planRestore({ kind: "backup", backupId: inc3.backupId }, [full, inc3], binlogs)).toThrow(
      new RegExp(`its chain needs ${inc2.backupId}.*newest backup that can be restored is ${full.backupId}`),
    );
  });
});

describe("retention of chains", () => {
  const day = (d: number, h = 3) => `2026-11-${String(d).padStart(2, "0")}T0${h}:30:00.000Z`;
  const dayBackup = (d: number, h: number, parent?: BackupManifest): BackupManifest =>
    backup(0, parent, {
      backupId: `202611${String(d).padStart(2, "0")}T0${h}3000Z-${parent ? "incremental" : "full"}-db1`,
      startTime: day(d, h).replace(":30:00", ":10:00"),
      endTime: day(d, h),
      binlog: { file: file(d), position: 100 * h, gtidSet: `0-1-${10 * d + h}` },
      lsn: {
        fromLsn: parent ? parent.lsn.toLsn : "0",
        toLsn: String(100 * d + h),
        lastLsn: String(100 * d + h),
      },
    });
  const dayBinlog = (d: number): BinlogManifest => ({
    ...binlog(d),
    gtidsBefore: `0-1-${10 * d}`,
    lastEventTime: day(d).replace("03:30", "23:59"),
    shippedAt: day(d + 1),
  });
  const days = [1, 2, 3, 4, 5, 6];
  const backups: BackupManifest[] = [];
  for (const d of days) {
    const f = dayBackup(d, 3);
    const i1 = dayBackup(d, 6, f);
    const i2 = dayBackup(d, 9, i1);
    backups.push(f, i1, i2);
  }
  const sources = new Map([[SOURCE, days.map(dayBinlog)]]);
  const now = new Date("2026-11-06T12:00:00Z");

  it("an incremental goes with the full backup it is built on, and stays while that one stays", () => {
    const decision = planRetention(backups, sources, { fullBackups: 2, pitrDays: 1 }, now);
    expect(decision.refused).toBeNull();
    const ids = (d: number) =>
      backups.filter((b) => b.endTime.startsWith(day(d).slice(0, 10))).map((b) => b.backupId);
    expect(decision.deleteBackups).toEqual([1, 2, 3, 4].flatMap(ids));
    expect(decision.keepBackups).toEqual([5, 6].flatMap(ids));
  });

  it("a full backup an incremental under Object Lock needs is kept with it", () => {
    // At 05:00 on the 4th the 3rd's full backup (03:30) is out of its one-day lock, its
    // incrementals (06:30, 09:30) are not.
    const now = new Date("2026-11-04T05:00:00Z");
    const locked = planRetention(backups, sources, { fullBackups: 1, pitrDays: 0, objectLockDays: 1 }, now);
    expect(locked.keepBackups).toContain("20261103T033000Z-full-db1");
    expect(locked.deleteBackups).toContain("20261102T093000Z-incremental-db1");
    expect(locked.notes.join("\n")).toMatch(
      /20261103T033000Z-full-db1 is kept: incremental 20261103T063000Z-incremental-db1.*Object Lock/,
    );
  });

  it("an incremental whose chain is broken is kept, and said so", () => {
    const orphan = backups.filter((b) => b.backupId !== "20261106T063000Z-incremental-db1");
    const decision = planRetention(orphan, sources, { fullBackups: 2, pitrDays: 1 }, now);
    expect(decision.keepBackups).toContain("20261106T093000Z-incremental-db1");
    expect(decision.notes.join("\n")).toMatch(/20261106T093000Z-incremental-db1 has a broken chain/);
  });
});
