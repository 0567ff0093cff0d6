import type { ReplicationState } from "../../core/agent-output.js";
import type { EngineName } from "../../core/engine.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { ReplicationFilter } from "../restore/partial.js";
import type { SqlClient } from "../sql-client.js";

/** Where the restored server's replication applier reads the downloaded binlogs from. */
export type ApplierSource =
  /** MariaDB: a throwaway local server that serves them over replication. */
  | { readonly kind: "local-server"; readonly port: number }
  /** MySQL: the files themselves, installed as the restored server's relay logs. */
  | { readonly kind: "relay-log"; readonly file: string; readonly position: number };

/** Where MySQL and MariaDB differ, behind one interface (DESIGN §4). */
export interface Engine {
  readonly name: EngineName;
  readonly tools: {
    /** xtrabackup | mariabackup */
    readonly backup: string;
    /** xbstream | mbstream */
    readonly stream: string;
    /** mysqlbinlog | mariadb-binlog */
    readonly binlog: string;
    /** mysql | mariadb */
    readonly client: string;
    /** mysqld | mariadbd */
    readonly server: string;
    /** mysqldump | mariadb-dump */
    readonly dump: string;
  };
  /** Files in the stream that hold the binlog coordinates of the consistent point, in preference order. */
  readonly binlogInfoFiles: readonly string[];
  /** The systemd unit of the server, for the default `server.start` / `server.stop`. */
  readonly serviceName: string;
  /** Arguments after `--defaults-extra-file` for a streaming backup to stdout. */
  backupArgs(options: BackupArgsOptions): string[];
  /**
   * Arguments of the backup tool that apply the redo log to an extracted backup, or (`step`) one
   * link of an incremental chain: the full backup, then each incremental's deltas
   * (`--incremental-dir`) onto it, `moreToApply` while later links follow.
   */
  prepareArgs(targetDir: string, useMemoryMiB: number, step?: PrepareStep): string[];
  /** The server's current InnoDB LSN: an incremental's base must not be past it. */
  readLsn(sql: SqlClient): Promise<string>;
  /** The tool's version from its `--version` output. */
  parseToolVersion(output: string): string;
  /** Throws when the backup tool cannot back up this server version. */
  checkToolVersion(serverVersion: string, toolVersion: string): void;
  /** The tool's last words on success; exit code 0 without them is still a failure. */
  readonly completedMarker: string;
  readServerIdentity(sql: SqlClient): Promise<ServerIdentity>;
  /**
   * The binary log settings point-in-time restore relies on: ROW events, GTIDs, and a replica's
   * binlog holding what it replicates (so a promoted replica's binlogs carry the window on).
   */
  readonly requiredBinlogSettings: readonly RequiredSetting[];
  readReplication(sql: SqlClient): Promise<ReplicationState | null>;
  /**
   * After a restore and replay: the position the restored server reached, recorded as the
   * position it replicates from (so it can become a replica without replaying anything twice).
   */
  adoptRestoredPosition(
    sql: SqlClient,
    planned: string,
    replayedBy: "applier" | "client" | "none",
  ): Promise<string>;
  /**
   * Makes the restored server's binlog start at file number `next`, keeping its GTID position
   * (`gtids`): a restored host's fresh binlog would otherwise reuse file names its binlog source
   * already shipped, and its streamer would take them for what S3 holds.
   */
  renumberBinlogs(sql: SqlClient, next: number, gtids: string): Promise<void>;
  /** Keeps a restored replica from taking writes: read_only (MySQL: super_read_only too). */
  keepReplicaReadOnly(sql: SqlClient): Promise<void>;
  stopReplication(sql: SqlClient): Promise<void>;
  /**
   * A rotated replication password for the source this replica replicates from, restarting
   * replication with it (MySQL: the receiver thread only; MariaDB: both, for milliseconds).
   */
  changeSourcePassword(sql: SqlClient, password: string): Promise<void>;
  /** Starts GTID replication from `source` at the position the restored server adopted. */
  startReplication(
    sql: SqlClient,
    source: { host: string; port: number; user: string; password: string },
  ): Promise<void>;
  /** Creates the system tables of an empty datadir (for the throwaway binlog source). */
  initializeDatadir(defaultsFile: string): Promise<void>;
  /** The server option that keeps replication from starting on its own. */
  readonly skipReplicaStart: string;
  /** How this engine's applier reads downloaded binlogs. */
  readonly applierSource: ApplierSource["kind"];
  /** The statements that start the applier on `source`, stopping right after the GTIDs in `until`. */
  replicateUntilSql(options: {
    source: ApplierSource;
    until: string;
    parallelWorkers: number;
    /** Apply only these tables' transactions (a partial table restore; MariaDB only). */
    filter?: ReplicationFilter;
  }): string;
  /** The applier's state while it replays: running, or stopped with an error. */
  /**
   * The binlog tool's arguments for the client fallback (`mysqlbinlog … | mysql`): every
   * transaction after the backup's GTIDs up to `until`, none applied twice, none missed.
   */
  clientReplayArgs(range: {
    files: readonly string[];
    startPosition: number;
    stopPosition: number;
    backupGtids: string;
    until: string;
  }): string[];
  /**
   * Client options for the replay session (`mysql`/`mariadb` fed by the binlog tool): MariaDB
   * replays without binlogging it, since `mariadb-binlog | mariadb` splits a row-logged
   * `CREATE TABLE … SELECT` into two transactions, the second under a GTID of its own that
   * gtid_strict_mode refuses when the real next GTID arrives (and that would otherwise shift
   * every later one).
   */
  readonly clientReplaySession: readonly string[];
  /** The applier's state, and the source binlog coordinates it has executed up to (for progress). */
  readApplier(sql: SqlClient): Promise<ApplierState>;
  removeApplier(sql: SqlClient): Promise<void>;
  /** The `<source>` part of binlog keys: server_uuid on MySQL, `<server_id>-<host>` on MariaDB. */
  binlogSource(identity: ServerIdentity, host: string): string;
}

export interface ApplierState {
  readonly running: boolean;
  readonly error: string | null;
  readonly executed?: { readonly file: string; readonly position: number };
}

/** A server setting point-in-time restore relies on. */
export interface RequiredSetting {
  /** Its names, newest first (MySQL renamed log_slave_updates to log_replica_updates in 8.0.26). */
  readonly names: readonly string[];
  /** Accepted values, upper-case; the first is what to set. */
  readonly allowed: readonly string[];
  /** What breaks without it. */
  readonly why: string;
}

/** Each required binary log setting the server does not have, with its fix. */
export async function binlogSettingProblems(
  engine: Engine,
  sql: SqlClient,
): Promise<{ found: string; fix: string }[]> {
  const names = engine.requiredBinlogSettings.flatMap((setting) => setting.names);
  const rows = await sql.rows(
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${names.map((name) => `'${name}'`).join(", ")})`,
  );
  const values = new Map(rows.map((row) => [row.Variable_name ?? "", (row.Value ?? "").toUpperCase()]));
  const problems: { found: string; fix: string }[] = [];
  for (const setting of engine.requiredBinlogSettings) {
    const name = setting.names.find((each) => values.has(each)) ?? setting.names[0]!;
    const value = values.get(name);
    if (value !== undefined && setting.allowed.includes(value)) continue;
    problems.push({
      found: `${name} is ${value ?? "not a setting of this server"}: ${setting.why}`,
      fix: `set ${name}=${setting.allowed[0]} in the server's config and restart it`,
    });
  }
  return problems;
}

/** The executed source coordinates of a SHOW REPLICA/SLAVE STATUS row (8.0.22+ names, then the old). */
export function executedCoordinates(row: Record<string, string | null>): ApplierState["executed"] {
  const file = row.Relay_Source_Log_File ?? row.Relay_Master_Log_File;
  const position = Number(row.Exec_Source_Log_Pos ?? row.Exec_Master_Log_Pos);
  return file && Number.isFinite(position) ? { file, position } : undefined;
}

/** One prepare of an incremental chain (host-agent/restore/datadir). */
export interface PrepareStep {
  /** The incremental whose deltas this prepare applies; absent for the chain's full backup. */
  readonly incrementalDir?: string;
  /** Later links are still to be applied: the prepare must not roll back open transactions. */
  readonly moreToApply: boolean;
}

export interface BackupArgsOptions {
  readonly datadir: string;
  readonly extraLsndir: string;
  readonly tmpdir: string;
  readonly parallel: number;
  /** Record the replication source's coordinates when backing up a replica. */
  readonly replicaInfo: boolean;
  /** An incremental backup: only the pages changed after this LSN (its base's end). */
  readonly incrementalLsn?: string;
}

export interface ServerIdentity {
  readonly version: string;
  readonly serverId: number;
  readonly serverUuid: string | null;
  readonly readOnly: boolean;
  readonly gtidExecuted: string;
  readonly datadir: string;
  readonly logBin: boolean;
}

export type { ReplicationState } from "../../core/agent-output.js";

/** "10.11.19-MariaDB-0+deb12u1-log" → "10.11"; "8.0.35-27" → "8.0". */
export function majorMinor(version: string): string {
  const match = /(\d+)\.(\d+)/.exec(version);
  if (!match) throw new RewindError(ErrorNames.toolVersion, `cannot read a version number from "${version}"`);
  return `${match[1]}.${match[2]}`;
}

/** xtrabackup and mariabackup take the same arguments for a streaming backup. */
export function streamingBackupArgs({
  datadir,
  extraLsndir,
  tmpdir,
  parallel,
  replicaInfo,
  incrementalLsn,
}: BackupArgsOptions): string[] {
  return [
    "--backup",
    "--stream=xbstream",
    `--datadir=${datadir}`,
    `--extra-lsndir=${extraLsndir}`,
    `--target-dir=${tmpdir}`,
    `--tmpdir=${tmpdir}`,
    `--parallel=${parallel}`,
    // Records the primary's coordinates too when the source is a replica.
    ...(replicaInfo ? ["--slave-info"] : []),
    // The LSN, not --incremental-basedir: the base's checkpoints are in its manifest, and the
    // host keeps no copy of a backup.
    ...(incrementalLsn !== undefined ? [`--incremental-lsn=${incrementalLsn}`] : []),
  ];
}

/**
 * mariabackup prepares a chain by preparing the full backup, then applying each incremental's
 * deltas onto it with `--incremental-dir`; `--apply-log-only` is "not needed or supported
 * anymore" (MariaDB, "mariadb-backup Options": --apply-log-only).
 */
export function prepareArgs(targetDir: string, useMemoryMiB: number, step?: PrepareStep): string[] {
  return [
    "--prepare",
    `--target-dir=${targetDir}`,
    ...(step?.incrementalDir ? [`--incremental-dir=${step.incrementalDir}`] : []),
    `--use-memory=${useMemoryMiB}M`,
  ];
}

/**
 * xtrabackup 8.0/8.4 must not roll back uncommitted transactions while later links are still to
 * be applied: every prepare of a chain but the last takes `--apply-log-only` (Percona XtraBackup
 * 8.0, "Prepare an incremental backup": without it "your incremental backups are unusable").
 */
export function xtrabackupPrepareArgs(targetDir: string, useMemoryMiB: number, step?: PrepareStep): string[] {
  return [
    "--prepare",
    ...(step?.moreToApply ? ["--apply-log-only"] : []),
    `--target-dir=${targetDir}`,
    ...(step?.incrementalDir ? [`--incremental-dir=${step.incrementalDir}`] : []),
    `--use-memory=${useMemoryMiB}M`,
  ];
}

/** What a server is to its cluster: it writes (primary), it follows one (replica), or neither. */
export type ServerRole = "primary" | "replica" | "read-only";

/**
 * The server's role, read in one place for every command: a replica replicates (whatever its
 * read_only), a primary does not and takes writes, anything else is read-only (a restored server
 * not promoted, a standby).
 */
export async function readServerRole(
  engine: Pick<Engine, "readServerIdentity" | "readReplication">,
  sql: SqlClient,
): Promise<{ role: ServerRole; identity: ServerIdentity; replication: ReplicationState | null }> {
  const identity = await engine.readServerIdentity(sql);
  const replication = await engine.readReplication(sql);
  const role: ServerRole = replication ? "replica" : identity.readOnly ? "read-only" : "primary";
  return { role, identity, replication };
}
