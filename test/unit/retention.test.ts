import { describe, expect, it } from "vitest";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import type { BackupManifest } from "../../core/manifest.js";
import { planRetention } from "../../core/retention.js";

const SOURCE = "1-db1";
const day = (n: number) => `2026-11-${String(n).padStart(2, "0")}T03:30:00.000Z`;
const file = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;

/** A full backup every day d (1..20) at position 100 of binlog d; binlog d holds GTIDs 0-1-(10d+1..10d+10). */
function backup(d: number): BackupManifest {
  return {
    backupId: `202611${String(d).padStart(2, "0")}T033000Z-full-db1`,
    type: "full",
    engine: { name: "mariadb", version: "10.11.19-MariaDB" },
    endTime: day(d),
    binlogSource: SOURCE,
    binlog: { file: file(d), position: 100, gtidSet: `0-1-${10 * d + 3}` },
  } as BackupManifest;
}

function binlog(n: number): BinlogManifest {
  return {
    engine: "mariadb",
    file: file(n),
    source: SOURCE,
    gtidsBefore: `0-1-${10 * n}`,
    firstGtid: `0-1-${10 * n + 1}`,
    lastGtid: `0-1-${10 * n + 10}`,
    gtidsAdded: `0-1-${10 * n + 10}`,
    lastEventTime: day(n).replace("03:30", "23:59"),
    shippedAt: day(n + 1),
  } as BinlogManifest;
}

const days = Array.from({ length: 20 }, (_, i) => i + 1);
const now = new Date("2026-11-20T12:00:00Z");
const binlogs = new Map([[SOURCE, days.map(binlog)]]);

describe("PITR-aware retention", () => {
  it("keeps the backup that starts the window, everything after it, and the binlogs they need", () => {
    const decision = planRetention(days.map(backup), binlogs, { fullBackups: 3, pitrDays: 7 }, now);
    expect(decision.refused).toBeNull();
    // The window starts 2026-11-13T12:00; the backup of the 13th (03:30) reaches it.
    expect(decision.keepBackups[0]).toBe("20261113T033000Z-full-db1");
    expect(decision.deleteBackups).toEqual(days.slice(0, 12).map((d) => backup(d).backupId));
    expect(decision.deleteBinlogs).toEqual(days.slice(0, 12).map((d) => `${SOURCE}/${file(d)}`));
  });

  it("keeps at least N full backups even when they are older than the window", () => {
    const decision = planRetention(days.map(backup), binlogs, { fullBackups: 15, pitrDays: 1 }, now);
    expect(decision.keepBackups).toHaveLength(15);
    expect(decision.deleteBinlogs.at(-1)).toBe(`${SOURCE}/${file(5)}`);
  });

  it("never deletes the only (newest) full backup", () => {
    const decision = planRetention([backup(1)], binlogs, { fullBackups: 1, pitrDays: 1 }, now);
    expect(decision.deleteBackups).toEqual([]);
    expect(decision.keepBackups).toEqual([backup(1).backupId]);
  });

  it("deletes nothing when a gap breaks the retained window, and says why", () => {
    const withGap = new Map([[SOURCE, days.filter((d) => d !== 16).map(binlog)]]);
    const decision = planRetention(days.map(backup), withGap, { fullBackups: 3, pitrDays: 7 }, now);
    expect(decision.deleteBackups).toEqual([]);
    expect(decision.deleteBinlogs).toEqual([]);
    expect(decision.refused).toMatch(
      /gap after 1-db1\/mariadb-bin.000015 \(no source shipped the transactions after 0-1-160 up to 0-1-170/,
    );
  });

  it("deletes nothing when the binlog after the oldest kept backup was never shipped", () => {
    const missingStart = new Map([[SOURCE, days.filter((d) => d !== 13).map(binlog)]]);
    const decision = planRetention(days.map(backup), missingStart, { fullBackups: 3, pitrDays: 7 }, now);
    expect(decision.deleteBackups).toEqual([]);
    expect(decision.refused).toMatch(
      /gap after backup 20261113T033000Z-full-db1 \(no source shipped the transactions after 0-1-133 up to 0-1-140/,
    );
  });

  it("leaves objects under Object Lock, and the binlogs those backups need", () => {
    const decision = planRetention(
      days.map(backup),
      binlogs,
      { fullBackups: 3, pitrDays: 7, objectLockDays: 10 },
      now,
    );
    // Locked until day d+10: backups of days 11 and 12 are still locked on the 20th.
    expect(decision.deleteBackups).toEqual(days.slice(0, 10).map((d) => backup(d).backupId));
    expect(decision.keepBackups[0]).toBe("20261111T033000Z-full-db1");
    // Binlog 10's last event (the 10th, 23:59) is locked until the 20th, 23:59: still kept.
    expect(decision.deleteBinlogs.at(-1)).toBe(`${SOURCE}/${file(9)}`);
    expect(decision.notes).toContain(
      "20261112T033000Z-full-db1 is under Object Lock until 2026-11-22T03:30:00.000Z; kept",
    );
  });
});
