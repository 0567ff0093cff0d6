import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { mariadbEngine, replicationFromStatusRow } from "../../host-agent/engines/mariadb.js";
import { mysqlEngine } from "../../host-agent/engines/mysql.js";

describe("engines", () => {
  it("reads tool versions and refuses a tool of another major version", () => {
    const xtrabackup = readFileSync(
      new URL("../fixtures/mysql/xtrabackup-version.txt", import.meta.url),
      "utf8",
    );
    expect(mysqlEngine.parseToolVersion(xtrabackup)).toBe("8.0.35-30");
    expect(() => mysqlEngine.checkToolVersion("8.0.36", "8.0.35-30")).not.toThrow();
    expect(() => mysqlEngine.checkToolVersion("8.4.2", "8.0.35-30")).toThrow(
      /xtrabackup 8.0.35-30 cannot back up MySQL 8.4.2: use the Percona XtraBackup series that matches the server \(8.4\)/,
    );
    expect(
      mariadbEngine.parseToolVersion("mariabackup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu"),
    ).toBe("10.11.19-MariaDB");
    expect(() => mariadbEngine.checkToolVersion("10.6.18-MariaDB-log", "10.11.19-MariaDB")).toThrow(
      /install the mariadb-backup package that matches the server/,
    );
  });

  it("name their tools and build streaming backup arguments", () => {
    expect(mysqlEngine.tools).toEqual({
      backup: "xtrabackup",
      stream: "xbstream",
      binlog: "mysqlbinlog",
      client: "mysql",
      server: "mysqld",
      dump: "mysqldump",
    });
    const args = mysqlEngine.backupArgs({
      datadir: "/var/lib/mysql",
      extraLsndir: "/w/lsn",
      tmpdir: "/w",
      parallel: 8,
      replicaInfo: true,
    });
    expect(args).toEqual([
      "--backup",
      "--stream=xbstream",
      "--datadir=/var/lib/mysql",
      "--extra-lsndir=/w/lsn",
      "--target-dir=/w",
      "--tmpdir=/w",
      "--parallel=8",
      "--slave-info",
    ]);
  });

  it("name binlog sources as DESIGN §3 says", () => {
    const identity = {
      version: "8.0.35",
      serverId: 7,
      serverUuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562",
      readOnly: false,
      gtidExecuted: "",
      datadir: "/var/lib/mysql/",
      logBin: true,
    };
    expect(mysqlEngine.binlogSource(identity, "db1")).toBe("3e11fa47-71ca-11e1-9e33-c80aa9429562");
    expect(mariadbEngine.binlogSource({ ...identity, serverUuid: null }, "db1")).toBe("7-db1");
  });

  it("read replication state from MySQL 8 (Replica_*) and MariaDB (Slave_*) columns", () => {
    expect(
      replicationFromStatusRow({
        Source_Host: "10.0.0.5",
        Source_Port: "3306",
        Source_User: "rewind_repl",
        Replica_IO_Running: "Yes",
        Replica_SQL_Running: "Yes",
        Seconds_Behind_Source: "3",
        Last_Error: "",
      }),
    ).toEqual({
      sourceHost: "10.0.0.5",
      sourcePort: 3306,
      sourceUser: "rewind_repl",
      ioRunning: true,
      sqlRunning: true,
      lagSeconds: 3,
      lastError: null,
    });
    expect(
      replicationFromStatusRow({
        Master_Host: "127.0.0.1",
        Master_Port: "3307",
        Slave_IO_Running: "Connecting",
        Slave_SQL_Running: "Yes",
        Seconds_Behind_Master: null,
        Last_IO_Error: "error connecting to master",
      }),
    ).toMatchObject({
      sourceUser: null,
      ioRunning: false,
      lagSeconds: null,
      lastError: "error connecting to master",
    });
    expect(replicationFromStatusRow(undefined)).toBeNull();
  });
});
