import { ErrorNames, RewindError } from "../../core/errors.js";
import type { Row, SqlClient } from "../sql-client.js";
import { runTool } from "../tool.js";
import {
  type Engine,
  executedCoordinates,
  majorMinor,
  prepareArgs,
  type ReplicationState,
  type ServerIdentity,
  streamingBackupArgs,
} from "./engine.js";

function flag(value: string | null | undefined): boolean {
  return value === "1" || value === "ON" || value === "Yes";
}

const APPLIER_CONNECTION = "rewind_replay";

/** A SQL string literal; the statement travels on stdin, never in argv. */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export function replicationFromStatusRow(row: Row | undefined): ReplicationState | null {
  if (!row) return null;
  const port = row.Master_Port ?? row.Source_Port;
  const lag = row.Seconds_Behind_Master ?? row.Seconds_Behind_Source;
  return {
    sourceHost: row.Master_Host ?? row.Source_Host ?? null,
    sourcePort: port ? Number(port) : null,
    sourceUser: row.Master_User ?? row.Source_User ?? null,
    ioRunning: flag(row.Slave_IO_Running ?? row.Replica_IO_Running),
    sqlRunning: flag(row.Slave_SQL_Running ?? row.Replica_SQL_Running),
    lagSeconds: lag === null || lag === undefined ? null : Number(lag),
    lastError: row.Last_Error || row.Last_IO_Error || row.Last_SQL_Error || null,
  };
}

export const mariadbEngine: Engine = {
  name: "mariadb",
  tools: {
    backup: "mariabackup",
    stream: "mbstream",
    binlog: "mariadb-binlog",
    client: "mariadb",
    server: "mariadbd",
    dump: "mariadb-dump",
  },
  binlogInfoFiles: ["mariadb_backup_binlog_info", "xtrabackup_binlog_info"],
  completedMarker: "completed OK!",
  serviceName: "mariadb",
  backupArgs: streamingBackupArgs,
  prepareArgs,
  async readLsn(sql) {
    const row = (await sql.rows("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'"))[0];
    return row?.Value ?? "";
  },
  parseToolVersion(output) {
    const match = /MariaDB server (\S+)/.exec(output) ?? /Ver (\S+)/.exec(output);
    if (!match)
      throw new RewindError(
        ErrorNames.toolVersion,
        `cannot read the mariabackup version from: ${output.trim()}; is mariadb-backup installed?`,
      );
    return match[1]!;
  },
  checkToolVersion(serverVersion, toolVersion) {
    if (majorMinor(serverVersion) !== majorMinor(toolVersion)) {
      throw new RewindError(
        ErrorNames.toolVersion,
        `mariabackup ${toolVersion} cannot back up MariaDB ${serverVersion}: their major versions differ; install the mariadb-backup package that matches the server`,
      );
    }
  },
  async readServerIdentity(sql: SqlClient): Promise<ServerIdentity> {
    const row = await sql.row(
      "SELECT @@version AS version, @@server_id AS server_id, @@read_only AS read_only, @@gtid_current_pos AS gtid, @@datadir AS datadir, @@log_bin AS log_bin",
    );
    return {
      version: row.version ?? "",
      serverId: Number(row.server_id),
      serverUuid: null,
      readOnly: flag(row.read_only),
      gtidExecuted: row.gtid ?? "",
      datadir: row.datadir ?? "",
      logBin: flag(row.log_bin),
    };
  },
  async readReplication(sql) {
    return replicationFromStatusRow((await sql.rows("SHOW SLAVE STATUS"))[0]);
  },
  async adoptRestoredPosition(sql, planned, replayedBy) {
    const row = await sql.row("SELECT @@server_id AS id, @@gtid_slave_pos AS slave");
    // The applier records what it applied in gtid_slave_pos. The client replays without
    // binlogging (clientReplaySession), to exact byte positions: what it reached is what was
    // planned. Recorded as gtid_slave_pos, from which the server also numbers its own next writes.
    const position = replayedBy === "applier" ? (row.slave ?? "") : planned;
    await sql.rows(`SET GLOBAL gtid_slave_pos = ${sqlString(position)}`);
    return position;
  },
  async renumberBinlogs(sql, next, gtids) {
    // RESET MASTER clears gtid_binlog_state; gtid_slave_pos (the restored position) stays, and
    // the server numbers its next writes from it.
    await sql.rows(`RESET MASTER TO ${Number(next)}; SET GLOBAL gtid_slave_pos = ${sqlString(gtids)}`);
  },
  async keepReplicaReadOnly(sql) {
    await sql.rows("SET GLOBAL read_only = ON");
  },
  async stopReplication(sql) {
    await sql.rows("STOP SLAVE");
  },
  // MariaDB refuses CHANGE MASTER while either thread runs (ER_SLAVE_MUST_STOP, 1198, seen on
  // 10.11), so both stop for the change and start again in one batch: a pause of milliseconds,
  // resumed from the GTID position, nothing lost or applied twice.
  async changeSourcePassword(sql, password) {
    await sql.rows("STOP SLAVE; CHANGE MASTER TO MASTER_PASSWORD=?; START SLAVE", [password]);
  },
  async startReplication(sql, { host, port, user, password }) {
    await sql.rows(
      `STOP SLAVE; CHANGE MASTER TO MASTER_HOST=${sqlString(host)}, MASTER_PORT=${Number(port)}, MASTER_USER=${sqlString(user)}, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos; START SLAVE`,
      [password],
    );
  },
  async initializeDatadir(defaultsFile) {
    await runTool("mariadb-install-db", [`--defaults-file=${defaultsFile}`, "--skip-test-db"]);
  },
  skipReplicaStart: "skip-slave-start",
  // MariaDB always writes GTIDs.
  requiredBinlogSettings: [
    {
      names: ["binlog_format"],
      // MIXED logs every statement unsafe for statement replay as rows.
      allowed: ["ROW", "MIXED"],
      why: "statement-based events replay non-deterministic statements differently from what the server did",
    },
    {
      names: ["log_slave_updates"],
      allowed: ["ON"],
      why: "a replica's binlog lacks what it replicates, so after a failover its binlogs do not continue the window",
    },
  ],
  applierSource: "local-server",
  replicateUntilSql({ source, until, parallelWorkers, filter }) {
    if (source.kind !== "local-server") throw new Error("MariaDB replays from a local binlog server");
    // Replication filters are per connection (`SET GLOBAL <connection>.replicate_do_table`), set
    // once the connection exists and before it starts. A filtered-out transaction's GTID still
    // advances the connection's position, so UNTIL stops where it must.
    const filters = filter
      ? [
          `SET GLOBAL ${APPLIER_CONNECTION}.replicate_do_table = ${sqlString(filter.doTables.join(","))};`,
          `SET GLOBAL ${APPLIER_CONNECTION}.replicate_wild_do_table = ${sqlString(filter.wildDoTables.join(","))};`,
        ]
      : [];
    // A named connection leaves the default one free for --replica-of.
    return [
      `SET GLOBAL slave_parallel_threads = ${Number(parallelWorkers)};`,
      "SET GLOBAL slave_parallel_mode = 'optimistic';",
      `CHANGE MASTER '${APPLIER_CONNECTION}' TO MASTER_HOST='127.0.0.1', MASTER_PORT=${Number(source.port)}, MASTER_USER='rewind', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos;`,
      ...filters,
      `START SLAVE '${APPLIER_CONNECTION}' UNTIL master_gtid_pos = ${sqlString(until)}`,
    ].join("\n");
  },
  clientReplaySession: ["--init-command=SET SESSION sql_log_bin = 0"],
  clientReplayArgs({ files, startPosition, stopPosition }) {
    // MariaDB's binlog tool has no GTID set filters; the byte positions are exact.
    return [`--start-position=${startPosition}`, `--stop-position=${stopPosition}`, ...files];
  },
  async readApplier(sql) {
    const row = (await sql.rows(`SHOW SLAVE '${APPLIER_CONNECTION}' STATUS`))[0];
    if (!row) return { running: false, error: null };
    return {
      running: row.Slave_SQL_Running === "Yes",
      error: row.Last_SQL_Error || (row.Slave_IO_Running === "No" && row.Last_IO_Error) || null,
      executed: executedCoordinates(row),
    };
  },
  async removeApplier(sql) {
    await sql.rows(`STOP SLAVE '${APPLIER_CONNECTION}'; RESET SLAVE '${APPLIER_CONNECTION}' ALL`);
  },
  binlogSource(identity, host) {
    return `${identity.serverId}-${host}`;
  },
};
