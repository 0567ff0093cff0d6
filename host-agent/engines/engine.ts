import type { SqlClient } from "../sql-client.js";

/** Where MySQL and MariaDB differ, behind one interface (DESIGN §4). */
export interface Engine {
  readonly name: "mariadb" | "mysql";
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
    /** mysqladmin | mariadb-admin */
    readonly admin: string;
  };
  /** Files in the stream that hold the binlog coordinates of the consistent point, in preference order. */
  readonly binlogInfoFiles: readonly string[];
  /** Arguments after `--defaults-extra-file` for a streaming backup to stdout. */
  backupArgs(options: BackupArgsOptions): string[];
  /** The tool's version from its `--version` output. */
  parseToolVersion(output: string): string;
  /** Throws when the backup tool cannot back up this server version. */
  checkToolVersion(serverVersion: string, toolVersion: string): void;
  /** The tool's last words on success; exit code 0 without them is still a failure. */
  readonly completedMarker: string;
  readServerIdentity(sql: SqlClient): Promise<ServerIdentity>;
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
  /** Starts GTID replication from `source` at the position the restored server adopted. */
  startReplication(
    sql: SqlClient,
    source: { host: string; port: number; user: string; password: string },
  ): Promise<void>;
  /** Creates the system tables of an empty datadir (for the throwaway binlog source). */
  initializeDatadir(defaultsFile: string): Promise<void>;
  /** Replicates from a local source on `port`, by GTID, stopping right after `until`. */
  replicateUntil(
    sql: SqlClient,
    options: { port: number; until: string; parallelWorkers: number },
  ): Promise<void>;
  readApplier(sql: SqlClient): Promise<{ running: boolean; error: string | null }>;
  removeApplier(sql: SqlClient): Promise<void>;
  /** The `<source>` part of binlog keys: server_uuid on MySQL, `<server_id>-<host>` on MariaDB. */
  binlogSource(identity: ServerIdentity, host: string): string;
}

export interface BackupArgsOptions {
  readonly datadir: string;
  readonly extraLsndir: string;
  readonly tmpdir: string;
  readonly parallel: number;
  /** Record the replication source's coordinates when backing up a replica. */
  readonly replicaInfo: boolean;
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

export interface ReplicationState {
  readonly sourceHost: string | null;
  readonly sourcePort: number | null;
  readonly ioRunning: boolean;
  readonly sqlRunning: boolean;
  readonly lagSeconds: number | null;
  readonly lastError: string | null;
}

/** "10.11.19-MariaDB-0+deb12u1-log" → "10.11"; "8.0.35-27" → "8.0". */
export function majorMinor(version: string): string {
  const match = /(\d+)\.(\d+)/.exec(version);
  if (!match) throw new Error(`cannot read a version number from "${version}"`);
  return `${match[1]}.${match[2]}`;
}

/** xtrabackup and mariabackup take the same arguments for a streaming backup. */
export function streamingBackupArgs({
  datadir,
  extraLsndir,
  tmpdir,
  parallel,
  replicaInfo,
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
  ];
}
