import { ErrorNames, RewindError } from "../../core/errors.js";
import { gtidModel } from "../../core/gtid/index.js";
import type { SqlClient } from "../sql-client.js";
import { runTool } from "../tool.js";
import {
  type Engine,
  executedCoordinates,
  majorMinor,
  type ServerIdentity,
  streamingBackupArgs,
  xtrabackupPrepareArgs,
} from "./engine.js";
import { replicationFromStatusRow, sqlString } from "./mariadb.js";

/** The host the replay channel names: its receiver never runs, the SQL thread reads relay logs. */
const RELAY_SOURCE_HOST = "rewind-relay-log-replay";

export const mysqlEngine: Engine = {
  name: "mysql",
  tools: {
    backup: "xtrabackup",
    stream: "xbstream",
    binlog: "mysqlbinlog",
    client: "mysql",
    server: "mysqld",
    dump: "mysqldump",
  },
  binlogInfoFiles: ["xtrabackup_binlog_info"],
  completedMarker: "completed OK!",
  // The unit of Oracle's and Percona's Debian/Ubuntu packages; RHEL's is mysqld (set server.start).
  serviceName: "mysql",
  backupArgs: streamingBackupArgs,
  prepareArgs: xtrabackupPrepareArgs,
  async readLsn(sql) {
    // performance_schema.log_status (8.0.17+) needs BACKUP_ADMIN, which xtrabackup's account has.
    const row = await sql.row(
      "SELECT JSON_UNQUOTE(JSON_EXTRACT(STORAGE_ENGINES, '$.InnoDB.LSN')) AS lsn FROM performance_schema.log_status",
    );
    return row.lsn ?? "";
  },
  parseToolVersion(output) {
    const match = /xtrabackup version (\S+)/.exec(output);
    if (!match)
      throw new RewindError(
        ErrorNames.toolVersion,
        `cannot read the xtrabackup version from: ${output.trim()}; is Percona XtraBackup installed?`,
      );
    return match[1]!;
  },
  checkToolVersion(serverVersion, toolVersion) {
    if (majorMinor(serverVersion) !== majorMinor(toolVersion)) {
      throw new RewindError(
        ErrorNames.toolVersion,
        `xtrabackup ${toolVersion} cannot back up MySQL ${serverVersion}: use the Percona XtraBackup series that matches the server (${majorMinor(serverVersion)})`,
      );
    }
  },
  async readServerIdentity(sql: SqlClient): Promise<ServerIdentity> {
    const row = await sql.row(
      "SELECT @@version AS version, @@server_id AS server_id, @@server_uuid AS server_uuid, @@read_only AS read_only, @@gtid_executed AS gtid, @@datadir AS datadir, @@log_bin AS log_bin",
    );
    return {
      version: row.version ?? "",
      serverId: Number(row.server_id),
      serverUuid: row.server_uuid ?? null,
      readOnly: row.read_only === "1",
      // MySQL prints long GTID sets over several lines.
      gtidExecuted: (row.gtid ?? "").replace(/\\n|\s/g, ""),
      datadir: row.datadir ?? "",
      logBin: row.log_bin === "1",
    };
  },
  async readReplication(sql) {
    return replicationFromStatusRow((await sql.rows("SHOW REPLICA STATUS"))[0]);
  },
  async adoptRestoredPosition(sql) {
    // MySQL keeps gtid_executed itself, from the restored mysql.gtid_executed table and the replay.
    return ((await sql.row("SELECT @@gtid_executed AS pos")).pos ?? "").replace(/\s/g, "");
  },
  async renumberBinlogs(sql, next, gtids) {
    // RESET MASTER (8.4: RESET BINARY LOGS AND GTIDS) empties gtid_executed: it is set back at once.
    const { version } = await sql.row("SELECT @@version AS version");
    const reset = majorMinor(version ?? "8.0") >= "8.4" ? "RESET BINARY LOGS AND GTIDS" : "RESET MASTER";
    await sql.rows(`${reset} TO ${Number(next)}; SET GLOBAL gtid_purged = ${sqlString(gtids)}`);
  },
  async keepReplicaReadOnly(sql) {
    // super_read_only: not even an account with SUPER writes to a replica; the applier may.
    await sql.rows("SET GLOBAL super_read_only = ON");
  },
  async stopReplication(sql) {
    await sql.rows("STOP REPLICA");
  },
  // Only the receiver thread need stop to change SOURCE_PASSWORD (MySQL 8.0, CHANGE REPLICATION
  // SOURCE TO: "options that affect only the receiver thread").
  async changeSourcePassword(sql, password) {
    await sql.rows(
      "STOP REPLICA IO_THREAD; CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD=?; START REPLICA IO_THREAD",
      [password],
    );
  },
  async startReplication(sql, { host, port, user, password }) {
    await sql.rows(
      `STOP REPLICA; CHANGE REPLICATION SOURCE TO SOURCE_HOST=${sqlString(host)}, SOURCE_PORT=${Number(port)}, SOURCE_USER=${sqlString(user)}, SOURCE_PASSWORD=?, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1; START REPLICA`,
      [password],
    );
  },
  async initializeDatadir(defaultsFile) {
    await runTool("mysqld", [`--defaults-file=${defaultsFile}`, "--initialize-insecure"]);
  },
  skipReplicaStart: "skip-replica-start",
  requiredBinlogSettings: [
    {
      names: ["binlog_format"],
      // MIXED logs every statement unsafe for statement replay as rows.
      allowed: ["ROW", "MIXED"],
      why: "statement-based events replay non-deterministic statements differently from what the server did",
    },
    { names: ["gtid_mode"], allowed: ["ON"], why: "Rewind stitches and replays binlogs by GTID" },
    {
      names: ["enforce_gtid_consistency"],
      allowed: ["ON"],
      why: "gtid_mode=ON requires it",
    },
    {
      names: ["log_replica_updates", "log_slave_updates"],
      allowed: ["ON"],
      why: "a replica's binlog lacks what it replicates, so after a failover its binlogs do not continue the window",
    },
  ],
  applierSource: "relay-log",
  /**
   * The relay-log method: the downloaded binlogs are the relay logs of a private server on the
   * restored datadir, and its SQL thread applies them with parallel workers from the backup's
   * exact position until every GTID of `until` is applied. Already executed GTIDs are skipped.
   */
  replicateUntilSql({ source, until, parallelWorkers, filter }) {
    if (source.kind !== "relay-log") throw new Error("MySQL replays from relay logs");
    // A table restore on MySQL restores the whole backup (no partial copy is proven here).
    if (filter) throw new Error("MySQL's replay takes no table filter");
    return `SET GLOBAL replica_parallel_workers = ${Number(parallelWorkers)};
CHANGE REPLICATION SOURCE TO RELAY_LOG_FILE=${sqlString(source.file)}, RELAY_LOG_POS=${Number(source.position)}, SOURCE_HOST='${RELAY_SOURCE_HOST}';
START REPLICA SQL_THREAD UNTIL SQL_AFTER_GTIDS = ${sqlString(until)}`;
  },
  // MySQL logs CREATE TABLE … SELECT as one transaction (8.0.21+), and the replay's binlog keeps
  // gtid_executed whole.
  clientReplaySession: [],
  clientReplayArgs({ files, backupGtids, until }) {
    const gtids = gtidModel("mysql");
    const replayed = gtids.parseSet(until).subtract(gtids.parseSet(backupGtids)).toString();
    return [
      ...(backupGtids ? [`--exclude-gtids=${gtids.parseSet(backupGtids)}`] : []),
      `--include-gtids=${replayed}`,
      ...files,
    ];
  },
  async readApplier(sql) {
    const row = (await sql.rows("SHOW REPLICA STATUS"))[0];
    if (!row) return { running: false, error: null };
    return {
      running: row.Replica_SQL_Running === "Yes",
      error: row.Last_SQL_Error || null,
      executed: executedCoordinates(row),
    };
  },
  async removeApplier(sql) {
    await sql.rows("STOP REPLICA; RESET REPLICA ALL");
  },
  binlogSource(identity) {
    if (!identity.serverUuid)
      throw new RewindError(
        ErrorNames.serverControl,
        "MySQL reported no server_uuid; is this a MySQL 8 server?",
      );
    return identity.serverUuid;
  },
};
