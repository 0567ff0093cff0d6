import { createHash } from "node:crypto";
import {
  ACCOUNT_NAMES,
  ACCOUNTS,
  type AccountName,
  type AccountsSecret,
  accountFrom,
} from "../../core/contracts/accounts.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { accountGrants, grantSet } from "../../core/privileges.js";
import { accountsSecretId } from "../config.js";
import { type AgentContext, asRestoreUser, loginRefusal } from "../context.js";
import { readServerRole } from "../engines/engine.js";
import { sqlString } from "../engines/mariadb.js";
import { log } from "../log.js";
import { type DatabaseCredentials, fetchAccountsSecret, type SecretVersion } from "../secrets.js";
import type { Row, SqlClient } from "../sql-client.js";

/** What `users ensure` did to one account. */
export interface EnsuredAccount {
  readonly account: AccountName;
  readonly user: string;
  /** created, password, grants; empty when the account already matched. */
  readonly changes: readonly string[];
  /** The privileges added and removed, as "PRIVILEGE ON object". */
  readonly granted: readonly string[];
  readonly revoked: readonly string[];
}

export interface EnsureResult {
  readonly secret: string;
  readonly changed: boolean;
  readonly accounts: readonly EnsuredAccount[];
  /** Why nothing was done (install on a replica). */
  readonly skipped?: string;
}

/** MariaDB's mysql_native_password hash ("*" + SHA1(SHA1(password)), upper-case hex). */
function nativePasswordHash(password: string): string {
  const inner = createHash("sha1").update(password, "utf8").digest();
  return `*${createHash("sha1").update(inner).digest("hex").toUpperCase()}`;
}

/**
 * `rewind-agent users ensure`, on the primary: creates or repairs each account of the cluster's
 * accounts secret (core/contracts/accounts.ts) with exactly the privileges core/privileges.ts
 * lists, and reports what it changed; a second run changes nothing. Replicas get the accounts
 * through replication, so it refuses on one, naming its primary. It logs in as the admin account,
 * or (a new cluster) as root over the socket.
 */
export async function ensureAccounts(
  context: AgentContext,
  {
    onReplica = "refuse",
    version,
    login,
  }: {
    readonly onReplica?: "refuse" | "skip";
    readonly version?: SecretVersion;
    /** An account with the privileges to create users, tried first (a root with a password). */
    readonly login?: DatabaseCredentials;
  } = {},
): Promise<EnsureResult> {
  const secretId = accountsSecretId(context.config);
  // Always the current value (or the version a rotation sets): what the servers must match.
  const secret = await fetchAccountsSecret(context.config, { fresh: true, ...(version ? { version } : {}) });
  let loggedIn = false;
  return asRestoreUser(
    context,
    async (_file, sql) => {
      loggedIn = true;
      return ensureOnServer(context, sql, secret, onReplica);
    },
    login ? { login } : {},
  ).catch((error: unknown) => {
    if (loggedIn || !(error instanceof RewindError && error.name === ErrorNames.credentials)) throw error;
    throw new RewindError(
      ErrorNames.credentials,
      `no account could log in to set up the accounts: ${login ? `${login.username} (stdin), ` : ""}the admin account of secret ${secretId} and root over the socket were all refused; on a server whose root has a password (MySQL from RPM packages) run \`rewind-agent users ensure --login-user root --login-password-stdin\` once, the password on stdin`,
      error.message,
    );
  });
}

async function ensureOnServer(
  context: AgentContext,
  sql: SqlClient,
  secret: AccountsSecret,
  onReplica: "refuse" | "skip",
): Promise<EnsureResult> {
  const { config, engine } = context;
  const secretId = accountsSecretId(config);
  const { role, replication } = await readServerRole(engine, sql);
  if (role === "replica") {
    const source = replication?.sourceHost
      ? `${replication.sourceHost}${replication.sourcePort ? `:${replication.sourcePort}` : ""}`
      : "its source";
    if (onReplica === "skip") {
      return { secret: secretId, changed: false, accounts: [], skipped: `a replica of ${source}` };
    }
    throw new RewindError(
      ErrorNames.usage,
      `this server is a replica of ${source}: run \`rewind-agent users ensure\` on that primary; replicas get the accounts through replication`,
    );
  }
  const accounts: EnsuredAccount[] = [];
  for (const account of ACCOUNT_NAMES) {
    const credentials = accountFrom(secret, account);
    if (!credentials) {
      throw new RewindError(
        ErrorNames.configInvalid,
        `secret ${secretId} has no ${account} account: add "${account}": {"username": "…", "password": "…"}, or keep the "seed" the stack generated`,
      );
    }
    accounts.push(await ensureAccount(context, sql, account, credentials));
  }
  const changed = accounts.some((a) => a.changes.length > 0);
  for (const a of accounts) {
    if (a.changes.length > 0) log("info", `account ${a.user}: ${a.changes.join(", ")}`, { ...a });
  }
  return { secret: secretId, changed, accounts };
}

async function ensureAccount(
  context: AgentContext,
  sql: SqlClient,
  account: AccountName,
  credentials: { username: string; password: string },
): Promise<EnsuredAccount> {
  const { engine } = context;
  const host = ACCOUNTS[account].host;
  const quoted = `${sqlString(credentials.username)}@${sqlString(host)}`;
  const changes: string[] = [];
  const [existing] = await sql.rows(
    `SELECT plugin, authentication_string AS hash FROM mysql.user WHERE User = ${sqlString(credentials.username)} AND Host = ${sqlString(host)}`,
  );
  if (!existing) {
    await sql.rows(`CREATE USER ${quoted} IDENTIFIED BY ?`, [credentials.password]);
    changes.push("created");
  } else if (!(await passwordMatches(context, existing, credentials))) {
    await sql.rows(`ALTER USER ${quoted} IDENTIFIED BY ?`, [credentials.password]);
    changes.push("password");
  }
  const shown = await sql.rows(`SHOW GRANTS FOR ${quoted}`);
  const actual = grantSet(
    engine.name,
    shown.flatMap((row) => Object.values(row).filter(isString)),
  );
  const wanted = accountGrants(engine.name, account, quoted);
  const expected = grantSet(engine.name, wanted);
  const granted = [...expected].filter((g) => !actual.has(g));
  const revoked = [...actual].filter((g) => !expected.has(g));
  if (revoked.length > 0) {
    // Global privileges of a connected session are unaffected (MySQL "When Privilege Changes
    // Take Effect"), so a backup running now keeps its own until it reconnects.
    await sql.rows(`REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${quoted}`);
  }
  if (granted.length > 0 || revoked.length > 0) {
    await sql.rows(wanted.join(";\n"));
    changes.push("grants");
  }
  return { account, user: credentials.username, changes, granted, revoked };
}

function isString(value: string | null): value is string {
  return typeof value === "string";
}

/**
 * Whether the server already has this password for the account. MariaDB stores
 * mysql_native_password's unsalted hash, compared here without sending the password anywhere;
 * MySQL's caching_sha2_password is salted, so it is tried by logging in.
 */
async function passwordMatches(
  context: AgentContext,
  existing: Row,
  credentials: { username: string; password: string },
): Promise<boolean> {
  if (context.engine.name === "mariadb") {
    return (
      existing.plugin === "mysql_native_password" &&
      existing.hash === nativePasswordHash(credentials.password)
    );
  }
  return (await loginRefusal(context, credentials)) === undefined;
}

/**
 * The privileges an account lacks for its work, read from the server (SHOW GRANTS as itself):
 * a backup checks this before it starts the tool, so a missing grant is named, not buried in the
 * tool's output. ALL PRIVILEGES on *.* lacks nothing; more than the list is not this check's
 * concern (`users ensure` revokes it).
 */
export async function missingPrivileges(
  context: AgentContext,
  sql: SqlClient,
  account: AccountName,
): Promise<string[]> {
  const shown = await sql.rows("SHOW GRANTS");
  const actual = grantSet(
    context.engine.name,
    shown.flatMap((row) => Object.values(row).filter(isString)),
  );
  if (actual.has("ALL PRIVILEGES ON *.*")) return [];
  const expected = grantSet(context.engine.name, accountGrants(context.engine.name, account, "x"));
  return [...expected].filter((grant) => !actual.has(grant) && grant !== "GRANT OPTION ON *.*");
}
