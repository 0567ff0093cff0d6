import { describe, expect, it } from "vitest";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import type { BackupManifest } from "../../core/manifest.js";
import { bySource, findGaps, restorableWindow } from "../../core/restorable-window.js";
import { parseRestoreTarget, planRestore } from "../../core/restore-plan.js";

const SOURCE = "1-db1";
const hex = "0".repeat(64);

function backup(id: string, endTime: string, file: string, position: number, gtid: string): BackupManifest {
  return {
    backupId: id,
    type: "full",
    engine: { name: "mariadb", version: "10.11.19-MariaDB" },
    endTime,
    binlogSource: SOURCE,
    binlog: { file, position, gtidSet: gtid },
  } as BackupManifest;
}

/** Binlog n holds GTIDs 0-1-(10n+1) … 0-1-(10n+10), written over minute n. */
function binlog(n: number, overrides: Partial<BinlogManifest> = {}): BinlogManifest {
  const file = `mariadb-bin.${String(n).padStart(6, "0")}`;
  return {
    engine: "mariadb",
    file,
    source: SOURCE,
    previousFile: n > 1 ? `mariadb-bin.${String(n - 1).padStart(6, "0")}` : null,
    gtidsBefore: n > 1 ? `0-1-${10 * n}` : "",
    firstGtid: `0-1-${10 * n + 1}`,
    lastGtid: `0-1-${10 * n + 10}`,
    gtidsAdded: `0-1-${10 * n + 10}`,
    lastCommitTime: null,
    firstEventTime: `2026-11-21T10:${String(n).padStart(2, "0")}:00.000Z`,
    lastEventTime: `2026-11-21T10:${String(n).padStart(2, "0")}:59.000Z`,
    sha256: hex,
    ...overrides,
  } as BinlogManifest;
}

const backups = [
  backup("20261121T100130Z-full-db1", "2026-11-21T10:01:30.000Z", "mariadb-bin.000001", 5000, "0-1-15"),
  backup("20261121T100330Z-full-db1", "2026-11-21T10:03:30.000Z", "mariadb-bin.000003", 700, "0-1-35"),
];
const chain = [1, 2, 3, 4, 5].map((n) => binlog(n));

describe("restore planning", () => {
  it("a time target: the newest backup before it, binlogs from its exact position", () => {
    const plan = planRestore(parseRestoreTarget("2026-11-21T10:04:20Z"), backups, chain);
    expect(plan.backup.backupId).toBe("20261121T100330Z-full-db1");
    expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([
      ["mariadb-bin.000003", 700],
      ["mariadb-bin.000004", 4],
    ]);
  });

  it("a time target whose second spans two files takes both (a time includes its whole second)", () => {
    // File 4 ends at 10:04:59 and file 5 goes on within that same second before moving past it.
    const spanning = [1, 2, 3, 4]
      .map((n) => binlog(n))
      .concat(
        binlog(5, { firstEventTime: "2026-11-21T10:04:59.000Z", lastEventTime: "2026-11-21T10:05:30.000Z" }),
      );
    const plan = planRestore(parseRestoreTarget("2026-11-21T10:04:59Z"), backups, spanning);
    expect(plan.binlogs.map((b) => b.file)).toEqual([
      "mariadb-bin.000003",
      "mariadb-bin.000004",
      "mariadb-bin.000005",
    ]);
    // When the last shipped file ends in the target second, later events of that second may not
    // be shipped yet: refused, with the way out.
    expect(() => planRestore(parseRestoreTarget("2026-11-21T10:05:30.400Z"), backups, spanning)).toThrow(
      /is in the target second.*give the GTID 0-1-60/,
    );
  });

  it("a GTID target: the newest backup that does not contain it", () => {
    const plan = planRestore(parseRestoreTarget("0-1-33"), backups, chain);
    expect(plan.backup.backupId).toBe("20261121T100130Z-full-db1");
    expect(plan.binlogs.map((b) => b.file)).toEqual([
      "mariadb-bin.000001",
      "mariadb-bin.000002",
      "mariadb-bin.000003",
    ]);
  });

  it("a GTID target equal to a backup's consistent point restores that backup with no binlogs", () => {
    for (const [gtid, backupId] of [
      ["0-1-35", "20261121T100330Z-full-db1"],
      ["0-1-15", "20261121T100130Z-full-db1"],
    ] as const) {
      const plan = planRestore(parseRestoreTarget(gtid), backups, chain);
      expect(plan.backup.backupId).toBe(backupId);
      expect(plan.binlogs).toEqual([]);
    }
    // One transaction before the oldest backup's point is out of reach, and says so plainly.
    expect(() => planRestore(parseRestoreTarget("0-1-14"), backups, chain)).toThrow(
      /GTID 0-1-14 is before the oldest full backup's consistent point \(20261121T100130Z-full-db1/,
    );
  });

  it("a time target at the window's start (as list shows it, or its whole second) plans from the oldest backup", () => {
    const window = restorableWindow(backups, bySource(chain));
    expect(window.from).toBe("2026-11-21T10:01:30.000Z");
    const late = [
      backup("20261121T100130Z-full-db1", "2026-11-21T10:01:30.400Z", "mariadb-bin.000001", 5000, "0-1-15"),
    ];
    for (const [target, from] of [
      [window.from!, backups],
      ["2026-11-21T10:01:30Z", late],
    ] as const) {
      const plan = planRestore(parseRestoreTarget(target), from, chain);
      expect(plan.backup.backupId).toBe("20261121T100130Z-full-db1");
      expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([["mariadb-bin.000001", 5000]]);
    }
  });

  it("a backup id: just that backup", () => {
    expect(planRestore({ kind: "backup", backupId: backups[0]!.backupId }, backups, chain).binlogs).toEqual(
      [],
    );
  });

  it("refuses a target before the oldest backup, after the last shipped event, or a malformed one", () => {
    expect(() => planRestore(parseRestoreTarget("2026-11-21T09:00:00Z"), backups, chain)).toThrow(
      /before the oldest full backup's consistent point \(20261121T100130Z-full-db1/,
    );
    expect(() => planRestore(parseRestoreTarget("2026-11-21T11:00:00Z"), backups, chain)).toThrow(
      /after the last shipped event, 2026-11-21T10:05:59.000Z \(GTID 0-1-60 in 1-db1\/mariadb-bin.000005\)/,
    );
    expect(() => parseRestoreTarget("yesterday")).toThrow(/neither a GTID .* nor a time with a zone/);
    expect(() => parseRestoreTarget("2026-11-21T10:00:00")).toThrow(/time with a zone/);
  });

  it("a missing binlog: the window is cut there, targets before it work, past it are refused naming the file", () => {
    const withHole = chain.filter((manifest) => manifest.file !== "mariadb-bin.000004");
    expect(findGaps(backups, bySource(withHole))).toEqual([
      {
        after: "1-db1/mariadb-bin.000003",
        next: "1-db1/mariadb-bin.000005",
        reason:
          "no source shipped the transactions after 0-1-40 up to 0-1-50; the next shipped binlog, 1-db1/mariadb-bin.000005, starts after them",
      },
    ]);
    expect(restorableWindow(backups, bySource(withHole))).toMatchObject({
      from: "2026-11-21T10:01:30.000Z",
      to: "2026-11-21T10:03:59.000Z",
      toGtid: "0-1-40",
    });
    expect(
      planRestore(parseRestoreTarget("2026-11-21T10:03:45Z"), backups, withHole).binlogs.at(-1)!.file,
    ).toBe("mariadb-bin.000003");
    expect(() => planRestore(parseRestoreTarget("2026-11-21T10:05:10Z"), backups, withHole)).toThrow(
      /past a gap in the binlogs after 1-db1\/mariadb-bin.000003: no source shipped the transactions after 0-1-40 up to 0-1-50/,
    );
  });

  it("a GTID discontinuity is a gap too", () => {
    const jumped = chain.map((manifest) =>
      manifest.file === "mariadb-bin.000005" ? { ...manifest, gtidsBefore: "0-1-53" } : manifest,
    );
    expect(findGaps(backups, bySource(jumped))[0]).toMatchObject({
      after: "1-db1/mariadb-bin.000004",
      reason: expect.stringContaining("no source shipped the transactions after 0-1-50 up to 0-1-53"),
    });
    expect(() => planRestore(parseRestoreTarget("0-1-55"), backups, jumped)).toThrow(/past a gap/);
  });

  it("refuses when the file holding the backup's position was never shipped", () => {
    expect(() => planRestore(parseRestoreTarget("2026-11-21T10:04:20Z"), backups, chain.slice(3))).toThrow(
      /past a gap in the binlogs after backup 20261121T100330Z-full-db1: no source shipped the transactions after 0-1-35 up to 0-1-40/,
    );
  });
});
