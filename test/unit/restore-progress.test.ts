import { describe, expect, it } from "vitest";
import { RESTORE_PHASES, type RestoreProgressRecord } from "../../core/contracts/restore-progress.js";
import { DecodedPositions, ReplayMeter } from "../../host-agent/restore/binlogs.js";
import { RestoreProgress } from "../../host-agent/restore/progress.js";

describe("a restore's progress", () => {
  function tracked() {
    let now = Date.parse("2026-12-07T10:00:00Z");
    const written: RestoreProgressRecord[] = [];
    const progress = new RestoreProgress({
      restoreId: "exec-1",
      host: "db-1",
      kind: "whole",
      sink: async (record) => {
        written.push(record);
      },
      now: () => now,
    });
    return { progress, written, tick: (ms: number) => (now += ms) };
  }

  it("gives each phase's share done and the time it has left, writes at most every 3 s between phase changes, and ends at 100% with the phases in order", async () => {
    const { progress, written, tick } = tracked();
    progress.begin("download", "bytes", 1000);
    tick(1000);
    progress.advance(250);
    expect(progress.record()).toMatchObject({ phase: "download", percent: 25, etaSeconds: 3 });
    for (let i = 0; i < 10; i++) {
      tick(500);
      progress.advance(250 + i * 50);
      // The sink's writes finish between advances, as S3's do.
      await new Promise((resolve) => setImmediate(resolve));
    }
    progress.begin("extract", "bytes", 4000);
    tick(2000);
    progress.advance(1000);
    progress.begin("prepare", "bytes", null);
    tick(3000);
    expect(progress.record()).toMatchObject({ phase: "prepare", percent: null, etaSeconds: null });
    progress.begin("replay", "bytes", 0);
    progress.end();
    await progress.finish(true);

    const final = written.at(-1)!;
    expect(final).toMatchObject({ state: "succeeded", percent: 100, etaSeconds: 0, phase: "replay" });
    expect(final.phases.map((p) => p.phase)).toEqual(["download", "extract", "prepare", "replay"]);
    // Phases appear in RESTORE_PHASES order, each completed with its duration.
    const order = final.phases.map((p) => RESTORE_PHASES.indexOf(p.phase));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(final.phases.map((p) => [p.done, p.total, p.seconds])).toEqual([
      [1000, 1000, 6],
      [4000, 4000, 2],
      [0, null, 3],
      [0, 0, 0],
    ]);
    // Five seconds of advances inside one phase: the phase's start plus at most two timed writes.
    const downloadWrites = written.filter((r) => r.phase === "download" && r.state === "running");
    expect(downloadWrites.length).toBeGreaterThanOrEqual(2);
    expect(downloadWrites.length).toBeLessThanOrEqual(3);
  });

  it("a failed restore keeps what its last phase had done", async () => {
    const { progress, written, tick } = tracked();
    progress.begin("replay", "bytes", 1000);
    tick(4000);
    progress.advance(400);
    await progress.finish(false);
    expect(written.at(-1)).toMatchObject({
      state: "failed",
      phases: [{ phase: "replay", done: 400, total: 1000 }],
    });
  });

  it("writes nothing without a restore id (a restore not started from a plan), yet keeps the phases", async () => {
    const written: unknown[] = [];
    const progress = new RestoreProgress({
      restoreId: undefined,
      host: "db-1",
      kind: "scratch",
      sink: async (record) => {
        written.push(record);
      },
    });
    progress.begin("check", "tables", 3);
    await progress.finish(true);
    expect(written).toEqual([]);
    expect(progress.phases()).toMatchObject([{ phase: "check", done: 3, total: 3 }]);
  });
});

describe("replay positions", () => {
  // What mariadb-binlog prints for two files read from position 364 of the first.
  const decoded = [
    "/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;",
    "# at 4",
    "#261207  9:35:29 server id 9  end_log_pos 256 CRC32 0x15dd3dec \tStart: binlog v 4, server v 10.11.19-MariaDB-log created 261207",
    "# at 364",
    "#261207  9:35:29 server id 9  end_log_pos 445 CRC32 0x1 \tGTID 0-9-3 trans",
    `BINLOG '${"A".repeat(5000)}'`,
    "# at 784",
    "#261207  9:35:33 server id 9  end_log_pos 825 CRC32 0x2 \tRotate to bin.000002  pos: 4",
    "# at 4",
    "#261207  9:35:33 server id 9  end_log_pos 256 CRC32 0x3 \tStart: binlog v 4, server v 10.11.19-MariaDB-log created 261207",
    "# at 256",
    "# at 415",
    "",
  ].join("\n");

  it("follow the decoder's text across chunk boundaries, files and long lines", () => {
    for (const size of [7, 100, 4096, decoded.length]) {
      const positions = new DecodedPositions();
      const seen: { file: number; position: number }[] = [];
      for (let at = 0; at < decoded.length; at += size) {
        positions.push(Buffer.from(decoded.slice(at, at + size), "latin1"));
        if (positions.current) seen.push(positions.current);
      }
      expect(positions.current).toEqual({ file: 1, position: 415 });
      const legitimate = ["0:4", "0:364", "0:784", "1:4", "1:256", "1:415"];
      for (const s of seen) expect(legitimate).toContain(`${s.file}:${s.position}`);
      // Small chunks see every event.
      if (size === 7)
        expect(new Set(seen.map((s) => `${s.file}:${s.position}`))).toEqual(new Set(legitimate));
    }
  });

  it("count the bytes of every pass's stretch of every file", () => {
    const meter = new ReplayMeter(
      {
        runs: [
          {
            source: "a",
            files: ["a/bin.1", "a/bin.2"],
            startPosition: 364,
            stopPosition: 500,
            backupGtids: "",
            untilPosition: "",
          },
          {
            source: "b",
            files: ["b/bin.7"],
            startPosition: 1000,
            stopPosition: 3000,
            backupGtids: "",
            untilPosition: "",
          },
        ],
        files: [],
        lastTransaction: null,
        untilPosition: "",
        backupGtids: "",
      },
      "/nonexistent",
      (file) => ({ "a/bin.1": 825 })[file] ?? 0,
    );
    // (825 - 364) + (500 - 4) + (3000 - 1000)
    expect(meter.total).toBe(461 + 496 + 2000);
    expect(meter.doneAt(0, 0, 364)).toBe(0);
    expect(meter.doneAt(0, 1, 104)).toBe(461 + 100);
    expect(meter.doneAtFile(1, "bin.7", 2000)).toBe(461 + 496 + 1000);
    expect(meter.doneAt(1, 0, 9999)).toBe(meter.total);
    expect(meter.doneAtFile(0, "bin.9", 10)).toBeUndefined();
  });
});
