import type { AccountName } from "./contracts/accounts.js";
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

/**
 * What each account Rewind uses is granted (`users ensure` grants exactly this, and revokes
 * anything else): the backup account the backup tool's least, the replication account
 * REPLICATION SLAVE (what a replica's IO thread needs: MariaDB "GRANT", MySQL "Setting Up
 * Replication Users"), the admin account everything on *.* (a table restore creates, swaps and
 * fills tables in any schema, a restored replica is pointed at its source, and `users ensure`
 * itself creates and grants accounts), limited to logins on this host.
 */
export function accountPrivileges(
  engine: EngineName,
  account: AccountName,
): { global: string; tables: readonly string[]; grantOption: boolean } {
  switch (account) {
    case "backup":
      return { ...BACKUP_PRIVILEGES[engine], grantOption: false };
    case "replication":
      return { global: "REPLICATION SLAVE", tables: [], grantOption: false };
    case "admin":
      return { global: "ALL PRIVILEGES", tables: [], grantOption: true };
  }
}

/** The GRANT statements that give `quoted` ('user'@'host') exactly an account's privileges. */
export function accountGrants(engine: EngineName, account: AccountName, quoted: string): string[] {
  const { global, tables, grantOption } = accountPrivileges(engine, account);
  return [
    `GRANT ${global} ON *.* TO ${quoted}${grantOption ? " WITH GRANT OPTION" : ""}`,
    ...tables.map((table) => `GRANT SELECT ON ${table} TO ${quoted}`),
  ];
}

/**
 * The static privileges MySQL 8.0 and 8.4 list for ALL PRIVILEGES in SHOW GRANTS ("Privileges
 * Provided by MySQL", static privileges), which it expands there instead of printing ALL.
 */
const MYSQL_STATIC_PRIVILEGES = [
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "CREATE",
  "DROP",
  "RELOAD",
  "SHUTDOWN",
  "PROCESS",
  "FILE",
  "REFERENCES",
  "INDEX",
  "ALTER",
  "SHOW DATABASES",
  "SUPER",
  "CREATE TEMPORARY TABLES",
  "LOCK TABLES",
  "EXECUTE",
  "REPLICATION SLAVE",
  "REPLICATION CLIENT",
  "CREATE VIEW",
  "SHOW VIEW",
  "CREATE ROUTINE",
  "ALTER ROUTINE",
  "CREATE USER",
  "EVENT",
  "TRIGGER",
  "CREATE TABLESPACE",
  "CREATE ROLE",
  "DROP ROLE",
];

/**
 * SHOW GRANTS lines as a set of "PRIVILEGE ON object" entries (GRANT OPTION as one of them),
 * ignoring USAGE, the IDENTIFIED BY part and quoting: two sets are equal exactly when the
 * account holds the same privileges, whatever order or spelling the server prints them in.
 */
export function grantSet(engine: EngineName, lines: readonly string[]): Set<string> {
  const set = new Set<string>();
  for (const line of lines) {
    const match = /^GRANT (.+?) ON (\S+) TO \S+(?:@\S+)?(.*)$/i.exec(line.trim());
    if (!match || /^PROXY$/i.test(match[1]!)) continue;
    const object = match[2]!.replace(/[`'"]/g, "");
    for (const raw of match[1]!.split(",")) {
      let privilege = raw.trim().toUpperCase().replace(/\s+/g, " ");
      if (privilege === "USAGE" || privilege === "") continue;
      if (privilege === "ALL") privilege = "ALL PRIVILEGES";
      set.add(`${privilege} ON ${object}`);
    }
    if (/WITH GRANT OPTION/i.test(match[3]!)) set.add(`GRANT OPTION ON ${object}`);
  }
  // MySQL prints ALL PRIVILEGES expanded: every static privilege on *.* reads as ALL again.
  if (engine === "mysql" && MYSQL_STATIC_PRIVILEGES.every((p) => set.has(`${p} ON *.*`))) {
    for (const p of MYSQL_STATIC_PRIVILEGES) set.delete(`${p} ON *.*`);
    set.add("ALL PRIVILEGES ON *.*");
  }
  return set;
}
