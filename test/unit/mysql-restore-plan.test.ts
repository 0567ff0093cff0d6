import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import { BinlogReader } from "../../core/binlog/parse.js";
import { crc32 } from "../../core/crc32.js";
import { mysqlGtids } from "../../core/gtid/mysql.js";
import type { BackupManifest } from "../../core/manifest.js";
import { bySource, findGaps, restorableWindow } from "../../core/restorable-window.js";
import { parseRestoreTarget, planRestore } from "../../core/restore-plan.js";
import { planRetention } from "../../core/retention.js";
import { formatMicros } from "../../core/time.js";
import { replayRange } from "../../host-agent/restore/binlogs.js";

/**
 * A MySQL chain built from the binlogs a real MySQL 8.0.45 server wrote (test/fixtures/mysql8,
 * percona-binlog-server/gtid_80045): binlog.000001 holds uuid:1-4, binlog.000002 uuid:5-6.
 */
const DIR = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "../fixtures/mysql8/percona-binlog-server/gtid_80045",
);
const UUID = "396e294c-1ca4-11f1-9ae7-00155da79c6b";
const SOURCE = UUID;

/** The manifest binlog-push writes for a file, from the file itself. */
function manifestOf(file: string, overrides: Partial<BinlogManifest> = {}): BinlogManifest {
  let added = mysqlGtids.empty();
  let lastCommit: number | null = null;
  const reader = new BinlogReader({
    crc32,
    onTransaction: (t) => {
      added = added.add(t.gtid!);
      lastCommit = t.commitMicros;
    },
  });
  reader.push(readFileSync(path.join(DIR, file)));
  const summary = reader.finish();
  const iso = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());
  return {
    engine: "mysql",
    file,
    source: SOURCE,
    serverVersion: summary.serverVersion,
    gtidsBefore: summary.gtidsBefore,
    gtidsAdded: added.toString(),
    firstGtid: summary.firstGtid,
    lastGtid: summary.lastGtid,
    firstEventTime: iso(summary.firstEventTime),
    lastEventTime: iso(summary.lastEventTime),
    lastCommitTime: lastCommit === null ? null : formatMicros(lastCommit),
    transactions: summary.transactions,
    size: summary.size,
    ...overrides,
  } as BinlogManifest;
}

/** A backup taken on that server: its consistent point after `gtidSet`, at `position` of `file`. */
function backup(
  id: string,
  endTime: string,
  file: string,
  position: number,
  gtidSet: string,
): BackupManifest {
  return {
    backupId: id,
    type: "full",
    engine: { name: "mysql", version: "8.0.45" },
    endTime,
    binlogSource: SOURCE,
    binlog: { file, position, gtidSet },
  } as BackupManifest;
}

/** Where a restore downloads them: `<source>/<file>`. */
const DOWNLOADED = mkdtempSync(path.join(tmpdir(), "rewind-mysql-plan-"));
mkdirSync(path.join(DOWNLOADED, SOURCE));
for (const file of ["binlog.000001", "binlog.000002"])
  copyFileSync(path.join(DIR, file), path.join(DOWNLOADED, SOURCE, file));

const first = manifestOf("binlog.000001");
const second = manifestOf("binlog.000002");
const chain = [first, second];
// After transaction :2 (it ends at 642); :2 committed at 17:11:54.363161, :3 at .483587.
const afterTwo = backup(
  "20260310T171154Z-full-db1",
  "2026-03-10T17:11:54.400Z",
  "binlog.000001",
  642,
  `${UUID}:1-2`,
);

describe("restore planning on a real MySQL 8.0.45 binlog chain", () => {
  it("records what each file adds, and the chain has no gap", () => {
    expect(first).toMatchObject({ gtidsBefore: "", gtidsAdded: `${UUID}:1-4` });
    expect(second).toMatchObject({ gtidsBefore: `${UUID}:1-4`, gtidsAdded: `${UUID}:5-6` });
    expect(second.lastCommitTime).toBe("2026-03-10T17:11:54.640643Z");
    expect(findGaps([afterTwo], bySource(chain))).toEqual([]);
    expect(restorableWindow([afterTwo], bySource(chain))).toMatchObject({
      from: "2026-03-10T17:11:54.400Z",
      toGtid: `${UUID}:1-6`,
      gaps: [],
    });
  });

  it("a GTID target uuid:5 plans both files from the backup's position and stops right after :5", async () => {
    const plan = planRestore(parseRestoreTarget(`${UUID.toUpperCase()}:5`), [afterTwo], chain);
    expect(plan.target).toEqual({ kind: "gtid", gtid: `${UUID}:5` });
    expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([
      ["binlog.000001", 642],
      ["binlog.000002", 4],
    ]);
    const range = await replayRange(plan, DOWNLOADED);
    expect(range).toMatchObject({
      files: [`${SOURCE}/binlog.000001`, `${SOURCE}/binlog.000002`],
      runs: [{ startPosition: 642, stopPosition: 529, untilPosition: `${UUID}:1-5` }],
      untilPosition: `${UUID}:1-5`,
    });
    expect(range.lastTransaction?.gtid).toBe(`${UUID}:5`);
  });

  it("a time target is exact to the microsecond", async () => {
    // :3 committed at .483587 and :4 at .492808, both in the same second.
    const exact = planRestore(parseRestoreTarget("2026-03-10T17:11:54.483587Z"), [afterTwo], chain);
    expect(exact.binlogs.map((b) => b.file)).toEqual(["binlog.000001"]);
    expect(await replayRange(exact, DOWNLOADED)).toMatchObject({
      runs: [{ stopPosition: 919 }],
      untilPosition: `${UUID}:1-3`,
    });

    const before = planRestore(parseRestoreTarget("2026-03-10T17:11:54.492807Z"), [afterTwo], chain);
    expect((await replayRange(before, DOWNLOADED)).lastTransaction?.gtid).toBe(`${UUID}:3`);
    const at = planRestore(parseRestoreTarget("2026-03-10T17:11:54.492808Z"), [afterTwo], chain);
    expect((await replayRange(at, DOWNLOADED)).lastTransaction?.gtid).toBe(`${UUID}:4`);
  });

  it("targets at the window's start: the backup's own GTID and its end time need no replayed transaction", async () => {
    const byGtid = planRestore(parseRestoreTarget(`${UUID}:2`), [afterTwo], chain);
    expect(byGtid.backup.backupId).toBe(afterTwo.backupId);
    expect(byGtid.binlogs).toEqual([]);
    const byTime = planRestore(parseRestoreTarget(afterTwo.endTime), [afterTwo], chain);
    expect(byTime.backup.backupId).toBe(afterTwo.backupId);
    const range = await replayRange(byTime, DOWNLOADED);
    expect(range).toMatchObject({ files: [], lastTransaction: null, untilPosition: `${UUID}:1-2` });
    expect(() => planRestore(parseRestoreTarget(`${UUID}:1`), [afterTwo], chain)).toThrow(
      new RegExp(`GTID ${UUID}:1 is before the oldest full backup's consistent point`),
    );
    expect(() => planRestore(parseRestoreTarget("2026-03-10T17:11:54.399Z"), [afterTwo], chain)).toThrow(
      /before the oldest full backup's consistent point/,
    );
  });

  it("a missing middle file is a gap: later targets are refused naming it, earlier ones still plan", () => {
    // A third file after the real pair, as the server would have written it next.
    const third = manifestOf("binlog.000002", {
      file: "binlog.000003",
      gtidsBefore: `${UUID}:1-6`,
      gtidsAdded: `${UUID}:7-9`,
      firstGtid: `${UUID}:7`,
      lastGtid: `${UUID}:9`,
      lastEventTime: "2026-03-10T17:12:30.000Z",
      lastCommitTime: "2026-03-10T17:12:30.000001Z",
    });
    const holed = [first, third];
    expect(findGaps([afterTwo], bySource(holed))).toEqual([
      {
        after: `${SOURCE}/binlog.000001`,
        next: `${SOURCE}/binlog.000003`,
        reason: `no source shipped the transactions after ${UUID}:1-4 up to ${UUID}:5-6; the next shipped binlog, ${SOURCE}/binlog.000003, starts after them`,
      },
    ]);
    expect(() => planRestore(parseRestoreTarget(`${UUID}:8`), [afterTwo], holed)).toThrow(
      `past a gap in the binlogs after ${SOURCE}/binlog.000001: no source shipped the transactions after ${UUID}:1-4 up to ${UUID}:5-6`,
    );
    expect(
      planRestore(parseRestoreTarget(`${UUID}:4`), [afterTwo], holed).binlogs.map((b) => b.file),
    ).toEqual(["binlog.000001"]);
    // A file whose GTIDs do not continue where the previous one ended is a gap too.
    const jumped = [first, { ...second, gtidsBefore: `${UUID}:1-5` }];
    expect(findGaps([afterTwo], bySource(jumped))[0]?.reason).toBe(
      `no source shipped the transactions after ${UUID}:1-4 up to ${UUID}:5; the next shipped binlog, ${SOURCE}/binlog.000002, starts after them`,
    );
  });

  it("refuses a MariaDB GTID for a MySQL cluster, naming the syntax", () => {
    expect(() => planRestore(parseRestoreTarget("0-1-5"), [afterTwo], chain)).toThrow(
      /"0-1-5" is not a MySQL GTID, and this cluster's backups come from mysql; give one such as 3e11fa47-71ca-11e1-9e33-c80aa9429562:23/,
    );
  });

  it("retention keeps every file a retained backup's chain needs", () => {
    const older = backup("20260309T000000Z-full-db1", "2026-03-09T00:00:00.000Z", "binlog.000001", 157, "");
    const newer = backup(
      "20260310T171155Z-full-db1",
      "2026-03-10T17:11:55.000Z",
      "binlog.000002",
      529,
      `${UUID}:1-5`,
    );
    const now = new Date("2026-03-20T00:00:00Z");
    const binlogs = new Map([[SOURCE, chain]]);
    const keepOne = planRetention([older, newer], binlogs, { fullBackups: 1, pitrDays: 1 }, now);
    expect(keepOne).toMatchObject({
      deleteBackups: [older.backupId],
      deleteBinlogs: [`${SOURCE}/binlog.000001`],
      refused: null,
    });
    const keepBoth = planRetention([older, newer], binlogs, { fullBackups: 2, pitrDays: 1 }, now);
    expect(keepBoth).toMatchObject({ deleteBackups: [], deleteBinlogs: [], refused: null });
  });
});
