import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { format } from "mysql2";
import { describe, expect, it } from "vitest";
import { parseCheckpoints } from "../../core/binlog-coordinates.js";
import { backupGrants } from "../../core/privileges.js";
import { parseConfig } from "../../host-agent/config.js";
import { prepareArgs } from "../../host-agent/engines/engine.js";
import { mariadbEngine } from "../../host-agent/engines/mariadb.js";
import { mysqlEngine } from "../../host-agent/engines/mysql.js";
import { installRelayLogs } from "../../host-agent/restore/applier.js";
import type { SqlClient } from "../../host-agent/sql-client.js";

/**
 * No MySQL server can be installed here, so the MySQL side is proven on the command lines and
 * SQL it would run, against what the MySQL and Percona XtraBackup manuals specify.
 */
const UUID = "396e294c-1ca4-11f1-9ae7-00155da79c6b";

function recordingSql(): { sql: SqlClient; statements: string[] } {
  const statements: string[] = [];
  const sql = {
    // The text the driver sends: bound values escaped into the statement, as mysql2 does.
    rows: async (statement: string, values?: string[]) => {
      statements.push(values ? format(statement, values) : statement);
      return [];
    },
  } as unknown as SqlClient;
  return { sql, statements };
}

describe("the MySQL engine", () => {
  it("takes an incremental from its base's LSN and prepares a chain with --apply-log-only on every link but the last", () => {
    // xtrabackup_checkpoints of an incremental as xtrabackup 8.0 writes it (the LSNs of Percona's
    // "Incremental backup" walkthrough): the next link starts where this one's to_lsn ends.
    const checkpoints = parseCheckpoints(
      readFileSync(new URL("../fixtures/mysql/xtrabackup_checkpoints.incremental", import.meta.url), "utf8"),
    );
    expect(checkpoints).toEqual({
      backupType: "incremental",
      fromLsn: "1626007",
      toLsn: "4124244",
      lastLsn: "4124244",
    });
    expect(
      mysqlEngine.backupArgs({
        datadir: "/var/lib/mysql",
        extraLsndir: "/w/lsn",
        tmpdir: "/w",
        parallel: 4,
        replicaInfo: true,
        incrementalLsn: checkpoints.toLsn,
      }),
    ).toEqual([
      "--backup",
      "--stream=xbstream",
      "--datadir=/var/lib/mysql",
      "--extra-lsndir=/w/lsn",
      "--target-dir=/w",
      "--tmpdir=/w",
      "--parallel=4",
      "--slave-info",
      "--incremental-lsn=4124244",
    ]);
    // Full backup, then two incrementals (Percona XtraBackup 8.0, "Prepare an incremental backup").
    expect(mysqlEngine.prepareArgs("/s", 256, { moreToApply: true })).toEqual([
      "--prepare",
      "--apply-log-only",
      "--target-dir=/s",
      "--use-memory=256M",
    ]);
    expect(
      mysqlEngine.prepareArgs("/s", 256, { incrementalDir: "/s.incremental-1", moreToApply: true }),
    ).toEqual([
      "--prepare",
      "--apply-log-only",
      "--target-dir=/s",
      "--incremental-dir=/s.incremental-1",
      "--use-memory=256M",
    ]);
    expect(
      mysqlEngine.prepareArgs("/s", 256, { incrementalDir: "/s.incremental-2", moreToApply: false }),
    ).toEqual(["--prepare", "--target-dir=/s", "--incremental-dir=/s.incremental-2", "--use-memory=256M"]);
    // mariabackup has no --apply-log-only any more: the same chain, without it.
    expect(prepareArgs("/s", 256, { incrementalDir: "/s.incremental-1", moreToApply: true })).toEqual([
      "--prepare",
      "--target-dir=/s",
      "--incremental-dir=/s.incremental-1",
      "--use-memory=256M",
    ]);
  });

  it("reads the server's LSN from performance_schema.log_status", async () => {
    const sql = {
      row: async (statement: string) => (statement.includes("log_status") ? { lsn: "4124300" } : {}),
    } as unknown as SqlClient;
    expect(await mysqlEngine.readLsn(sql)).toBe("4124300");
  });

  it("backs up and prepares with xtrabackup 8.0 and 8.4 alike, and refuses a series that does not match the server", () => {
    const backup = mysqlEngine.backupArgs({
      datadir: "/var/lib/mysql",
      extraLsndir: "/w/lsn",
      tmpdir: "/w",
      parallel: 4,
      replicaInfo: false,
    });
    expect(backup).toEqual([
      "--backup",
      "--stream=xbstream",
      "--datadir=/var/lib/mysql",
      "--extra-lsndir=/w/lsn",
      "--target-dir=/w",
      "--tmpdir=/w",
      "--parallel=4",
    ]);
    expect(mysqlEngine.prepareArgs("/srv/stage", 512)).toEqual([
      "--prepare",
      "--target-dir=/srv/stage",
      "--use-memory=512M",
    ]);
    expect(mysqlEngine.prepareArgs).not.toBe(prepareArgs);
    const v84 =
      "xtrabackup version 8.4.0-1 based on MySQL server 8.4.0 Linux (x86_64) (revision id: da8c7b1b)";
    expect(mysqlEngine.parseToolVersion(v84)).toBe("8.4.0-1");
    expect(() => mysqlEngine.checkToolVersion("8.4.3", "8.4.0-1")).not.toThrow();
    expect(() => mysqlEngine.checkToolVersion("8.0.40", "8.4.0-1")).toThrow(
      "xtrabackup 8.4.0-1 cannot back up MySQL 8.0.40: use the Percona XtraBackup series that matches the server (8.0)",
    );
    expect(() => mysqlEngine.checkToolVersion("8.4.3", "8.0.35-30")).toThrow(
      expect.objectContaining({ name: "ToolVersionMismatch" }),
    );
  });

  it("replays through the applier with the relay-log method: relay logs from the backup's position until the GTIDs", () => {
    expect(
      mysqlEngine.replicateUntilSql({
        source: { kind: "relay-log", file: "rewind-relay.000001", position: 642 },
        until: `${UUID}:1-5`,
        parallelWorkers: 8,
      }),
    ).toBe(
      [
        "SET GLOBAL replica_parallel_workers = 8;",
        "CHANGE REPLICATION SOURCE TO RELAY_LOG_FILE='rewind-relay.000001', RELAY_LOG_POS=642, SOURCE_HOST='rewind-relay-log-replay';",
        `START REPLICA SQL_THREAD UNTIL SQL_AFTER_GTIDS = '${UUID}:1-5'`,
      ].join("\n"),
    );
    expect(() =>
      mysqlEngine.replicateUntilSql({
        source: { kind: "local-server", port: 1 },
        until: "",
        parallelWorkers: 1,
      }),
    ).toThrow(/relay logs/);
    expect(mysqlEngine.applierSource).toBe("relay-log");
    expect(mariadbEngine.applierSource).toBe("local-server");
  });

  it("the client fallback: mysqlbinlog excludes the backup's GTIDs and includes exactly the replayed ones", () => {
    const range = {
      files: ["/w/binlog.000001", "/w/binlog.000002"],
      startPosition: 642,
      stopPosition: 529,
      backupGtids: `${UUID}:1-2`,
      until: `${UUID}:1-5`,
    };
    expect(mysqlEngine.clientReplayArgs(range)).toEqual([
      `--exclude-gtids=${UUID}:1-2`,
      `--include-gtids=${UUID}:3-5`,
      "/w/binlog.000001",
      "/w/binlog.000002",
    ]);
    expect(mysqlEngine.clientReplayArgs({ ...range, backupGtids: "" })).toEqual([
      `--include-gtids=${UUID}:1-5`,
      "/w/binlog.000001",
      "/w/binlog.000002",
    ]);
    // MariaDB's tool has no GTID set filters: the byte positions are exact.
    expect(mariadbEngine.clientReplayArgs(range)).toEqual([
      "--start-position=642",
      "--stop-position=529",
      "/w/binlog.000001",
      "/w/binlog.000002",
    ]);
  });

  it("a restored server replicates from the primary by GTID auto-positioning", async () => {
    const { sql, statements } = recordingSql();
    await mysqlEngine.startReplication(sql, { host: "10.0.1.12", port: 3306, user: "repl", password: "p'w" });
    expect(statements).toEqual([
      "STOP REPLICA; CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.1.12', SOURCE_PORT=3306, SOURCE_USER='repl', SOURCE_PASSWORD='p\\'w', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1; START REPLICA",
    ]);
  });

  it("starts and stops the mysql unit by default, and grants the backup user what xtrabackup needs", () => {
    const base = {
      cluster: "orders",
      bucket: "rewind-test",
      connection: { socket: "/run/mysqld/mysqld.sock" },
      secrets: { backup: "rewind/orders/backup" },
      encryption: { kmsKeyId: "alias/rewind" },
    };
    expect(parseConfig({ ...base, engine: "mysql" }, "test").server).toEqual({
      start: ["systemctl", "start", "mysql"],
      stop: ["systemctl", "stop", "mysql"],
    });
    expect(parseConfig({ ...base, engine: "mariadb" }, "test").server.start).toEqual([
      "systemctl",
      "start",
      "mariadb",
    ]);
    expect(
      parseConfig({ ...base, engine: "mysql", server: { start: ["systemctl", "start", "mysqld"] } }, "test")
        .server,
    ).toEqual({ start: ["systemctl", "start", "mysqld"], stop: ["systemctl", "stop", "mysql"] });
    expect(backupGrants("mysql", "'rewind_backup'@'localhost'")).toEqual([
      "GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT, BACKUP_ADMIN ON *.* TO 'rewind_backup'@'localhost'",
      "GRANT SELECT ON performance_schema.log_status TO 'rewind_backup'@'localhost'",
      "GRANT SELECT ON performance_schema.keyring_component_status TO 'rewind_backup'@'localhost'",
      "GRANT SELECT ON performance_schema.replication_group_members TO 'rewind_backup'@'localhost'",
    ]);
  });

  it("installs downloaded binlogs as relay logs, in order, with their index", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "rewind-relay-"));
    try {
      const binlogDir = path.join(dir, "binlogs");
      const relayDir = path.join(dir, "relay");
      const fixtures = path.join(
        path.dirname(new URL(import.meta.url).pathname),
        "../fixtures/mysql8/percona-binlog-server/gtid_80045",
      );
      mkdirSync(binlogDir);
      for (const file of ["binlog.000001", "binlog.000002"])
        writeFileSync(path.join(binlogDir, file), readFileSync(path.join(fixtures, file)));
      const options = installRelayLogs(
        {
          source: UUID,
          files: ["binlog.000001", "binlog.000002"],
          startPosition: 642,
          stopPosition: 529,
          untilPosition: `${UUID}:1-5`,
          backupGtids: `${UUID}:1-2`,
        },
        binlogDir,
        relayDir,
      );
      expect(options).toEqual([
        `relay-log=${relayDir}/rewind-relay`,
        `relay-log-index=${relayDir}/rewind-relay.index`,
        "relay-log-purge=OFF",
        "relay-log-recovery=OFF",
      ]);
      expect(readFileSync(path.join(relayDir, "rewind-relay.index"), "utf8")).toBe(
        `${relayDir}/rewind-relay.000001\n${relayDir}/rewind-relay.000002\n`,
      );
      expect(readFileSync(path.join(relayDir, "rewind-relay.000002"))).toEqual(
        readFileSync(path.join(fixtures, "binlog.000002")),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
