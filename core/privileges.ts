import type { EngineName } from "./engine.js";

/**
 * The least the backup tool needs (DESIGN §4): mariabackup on MariaDB 10.11; Percona XtraBackup 8.0
 * and 8.4 on MySQL ("Connection and privileges needed"), including the performance_schema tables
 * it reads for the consistent point, keyring state and group replication members.
 */
export const BACKUP_PRIVILEGES: Record<EngineName, { global: string; tables: readonly string[] }> = {
  mariadb: { global: "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR", tables: [] },
  mysql: {
    global: "RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT, BACKUP_ADMIN",
    tables: [
      "performance_schema.log_status",
      "performance_schema.keyring_component_status",
      "performance_schema.replication_group_members",
    ],
  },
};

/** The GRANT statements that give `account` (a quoted 'user'@'host') what the backup tool needs. */
export function backupGrants(engine: EngineName, account: string): string[] {
  const { global, tables } = BACKUP_PRIVILEGES[engine];
  return [
    `GRANT ${global} ON *.* TO ${account}`,
    ...tables.map((table) => `GRANT SELECT ON ${table} TO ${account}`),
  ];
}
