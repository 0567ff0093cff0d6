import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  forgetBackupLineage,
  readBackupLineage,
  writeBackupLineage,
} from "../../host-agent/backup/lineage.js";

describe("a host's backup lineage (what an incremental builds on)", () => {
  const dirs: string[] = [];
  const stateDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "rewind-lineage-"));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const record = {
    backupId: "20261207T031500Z-full-db1",
    datadir: "/var/lib/mysql/",
    serverId: 1,
    toLsn: "18446744073709551000",
    incrementals: 0,
  };

  it("is written after a backup, and read back exactly (LSNs past 2^53 included)", () => {
    const dir = stateDir();
    expect(readBackupLineage(dir)).toBeUndefined();
    writeBackupLineage(dir, record);
    expect(readBackupLineage(dir)).toMatchObject(record);
  });

  it("a restore into the server's datadir forgets it; a restore anywhere else does not", () => {
    const dir = stateDir();
    writeBackupLineage(dir, record);
    forgetBackupLineage(dir, "/srv/restore-test/data");
    expect(readBackupLineage(dir)).toMatchObject(record);
    forgetBackupLineage(dir, "/var/lib/mysql");
    expect(readBackupLineage(dir)).toBeUndefined();
  });

  it("a damaged record is no record: the next backup is a full one, never a guess", () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, "backup-lineage.json"), JSON.stringify({ ...record, toLsn: "12e9" }));
    expect(readBackupLineage(dir)).toBeUndefined();
    writeFileSync(path.join(dir, "backup-lineage.json"), "{ half");
    expect(readBackupLineage(dir)).toBeUndefined();
  });
});
