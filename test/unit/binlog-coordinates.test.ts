import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseBinlogInfo, parseCheckpoints } from "../../core/binlog-coordinates.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/mysql/${name}`, import.meta.url), "utf8");

describe("binlog coordinates from the backup tool", () => {
  it("reads MariaDB's one-line form", () => {
    expect(parseBinlogInfo("mariadb-bin.000002\t344\t0-7-7\n")).toEqual({
      file: "mariadb-bin.000002",
      position: 344,
      gtidSet: "0-7-7",
    });
  });

  it("joins a MySQL GTID set that xtrabackup wrote over several lines", () => {
    expect(parseBinlogInfo(fixture("xtrabackup_binlog_info"))).toEqual({
      file: "mysql-bin.000042",
      position: 157,
      gtidSet: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5012,7a6e1f0e-71ca-11e1-9e33-c80aa9429562:1-77",
    });
  });

  it("accepts a server without GTIDs", () => {
    expect(parseBinlogInfo("mysql-bin.000001\t4\n")).toEqual({
      file: "mysql-bin.000001",
      position: 4,
      gtidSet: "",
    });
  });

  it("refuses an empty file with a reason", () => {
    expect(() => parseBinlogInfo("")).toThrow(/is binary logging enabled/);
  });

  it("keeps LSNs beyond 2^53 exact", () => {
    expect(parseCheckpoints(fixture("xtrabackup_checkpoints"))).toEqual({
      backupType: "full-backuped",
      fromLsn: "0",
      toLsn: "18446744073709551000",
      lastLsn: "18446744073709551100",
    });
    expect(() => parseCheckpoints("backup_type = full-backuped\n")).toThrow(/no from_lsn/);
  });
});
