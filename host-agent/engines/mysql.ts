import { ErrorNames, RewindError } from "../../core/errors.js";
import type { SqlClient } from "../sql-client.js";
import { runTool } from "../tool.js";
import { type Engine, majorMinor, type ServerIdentity, streamingBackupArgs } from "./engine.js";
import { replicationFromStatusRow, sqlString } from "./mariadb.js";

const CHANNEL = "rewind_replay";

export const mysqlEngine: Engine = {
  name: "mysql",
  tools: {
    backup: "xtrabackup",
    stream: "xbstream",
    binlog: "mysqlbinlog",
    client: "mysql",
    server: "mysqld",
    admin: "mysqladmin",
  },
  binlogInfoFiles: ["xtrabackup_binlog_info"],
  completedMarker: "completed OK!",
  backupArgs: streamingBackupArgs,
  parseToolVersion(output) {
    const match = /xtrabackup version (\S+)/.exec(output);
    if (!match) throw new Error(`cannot read the xtrabackup version from: ${output.trim()}`);
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
  async startReplication(sql, { host, port, user, password }) {
    await sql.rows(
      `STOP REPLICA; CHANGE REPLICATION SOURCE TO SOURCE_HOST=${sqlString(host)}, SOURCE_PORT=${Number(port)}, SOURCE_USER=${sqlString(user)}, SOURCE_PASSWORD=${sqlString(password)}, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1; START REPLICA`,
    );
  },
  async initializeDatadir(defaultsFile) {
    await runTool("mysqld", [`--defaults-file=${defaultsFile}`, "--initialize-insecure"]);
  },
  async replicateUntil(sql, { port, until, parallelWorkers }) {
    await sql.rows(
      `SET GLOBAL replica_parallel_workers = ${Number(parallelWorkers)};
       CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=${Number(port)}, SOURCE_USER='rewind', SOURCE_PASSWORD='', SOURCE_AUTO_POSITION=1 FOR CHANNEL '${CHANNEL}';
       START REPLICA UNTIL SQL_AFTER_GTIDS = ${sqlString(until)} FOR CHANNEL '${CHANNEL}'`,
    );
  },
  async readApplier(sql) {
    const row = (await sql.rows(`SHOW REPLICA STATUS FOR CHANNEL '${CHANNEL}'`))[0];
    if (!row) return { running: false, error: null };
    return { running: row.Replica_SQL_Running === "Yes", error: row.Last_SQL_Error || null };
  },
  async removeApplier(sql) {
    await sql.rows(`STOP REPLICA FOR CHANNEL '${CHANNEL}'; RESET REPLICA ALL FOR CHANNEL '${CHANNEL}'`);
  },
  binlogSource(identity) {
    if (!identity.serverUuid) throw new Error("MySQL reported no server_uuid");
    return identity.serverUuid;
  },
};
