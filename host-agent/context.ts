import type { AccountName } from "../core/contracts/accounts.js";
import { ErrorNames, RewindError } from "../core/errors.js";
import type { ClusterLocation } from "../core/layout.js";
import { type AgentConfig, accountsSecretId } from "./config.js";
import { withDefaultsFile, writeDefaultsFile } from "./defaults-file.js";
import { type Engine, readServerRole } from "./engines/engine.js";
import { engineFor } from "./engines/index.js";
import { log } from "./log.js";
import {
  type DatabaseCredentials,
  fetchAccount,
  fetchCredentials,
  forgetCachedSecret,
  SecretNotFound,
} from "./secrets.js";
import { SqlClient } from "./sql-client.js";

/** What every command works with: the validated config, the engine, and where in S3 the cluster lives. */
export interface AgentContext {
  readonly config: AgentConfig;
  readonly engine: Engine;
  readonly location: ClusterLocation;
  readonly signal: AbortSignal;
  /** Called while long work goes on, for task-token heartbeats. */
  readonly heartbeat: () => void;
}

export function makeContext(config: AgentConfig, signal: AbortSignal, heartbeat: () => void): AgentContext {
  return {
    config,
    engine: engineFor(config.engine),
    location: { cluster: config.cluster },
    signal,
    heartbeat,
  };
}

/** Where an account's credentials may come from, in the order they are tried. */
interface CredentialSource {
  readonly describe: string;
  /** A source that usually does not exist (AWSPENDING outside a rotation): not worth a log line. */
  readonly quiet?: boolean;
  readonly load: (fresh: boolean) => Promise<DatabaseCredentials & { readonly cached: boolean }>;
  readonly forget?: () => void;
}

function legacySource(context: AgentContext, secretId: string | undefined): CredentialSource[] {
  if (!secretId) return [];
  return [
    {
      describe: `secret ${secretId}`,
      load: (fresh) => fetchCredentials(context.config, secretId, { fresh }),
      forget: () => forgetCachedSecret(context.config, secretId),
    },
  ];
}

/**
 * The account's credentials in the accounts secret: AWSCURRENT, then AWSPENDING. During a
 * rotation the servers take the new password (setSecret) before Secrets Manager makes it current
 * (finishSecret): a command started between the two logs in with the pending one.
 */
function accountSources(context: AgentContext, account: AccountName): CredentialSource[] {
  const secretId = accountsSecretId(context.config);
  return [
    {
      describe: `the ${account} account of secret ${secretId}`,
      load: (fresh) => fetchAccount(context.config, account, { fresh }),
      forget: () => forgetCachedSecret(context.config, secretId),
    },
    {
      describe: `the ${account} account of secret ${secretId} (AWSPENDING, a rotation under way)`,
      load: () => fetchAccount(context.config, account, { version: { VersionStage: "AWSPENDING" } }),
      quiet: true,
    },
  ];
}

/** The server's refusal of these credentials, or undefined when it lets them in. */
export async function loginRefusal(
  context: AgentContext,
  credentials: DatabaseCredentials,
): Promise<RewindError | undefined> {
  const sql = new SqlClient(context.config.connection, credentials);
  try {
    await sql.connect();
    return undefined;
  } catch (error) {
    if (error instanceof RewindError && error.name === ErrorNames.credentials) return error;
    throw error;
  } finally {
    await sql.close();
  }
}

/**
 * The first source whose credentials the server accepts (each tried with a login). A cached
 * password the server refuses (rotated since) is fetched again; a source that is refused or
 * whose secret (or version) does not exist gives way to the next. When none is accepted, the
 * first refusal is the command's error.
 */
async function workingCredentials(
  context: AgentContext,
  sources: readonly CredentialSource[],
): Promise<DatabaseCredentials> {
  let first: Error | undefined;
  for (const [index, source] of sources.entries()) {
    const next = sources[index + 1]?.describe;
    try {
      let credentials = await source.load(false);
      let refused = await loginRefusal(context, credentials);
      if (refused && credentials.cached) {
        source.forget?.();
        credentials = await source.load(true);
        refused = await loginRefusal(context, credentials);
      }
      if (!refused) return { username: credentials.username, password: credentials.password };
      first ??= refused;
      if (next) log("warn", `the server refused ${source.describe}; trying ${next}`);
    } catch (error) {
      if (!(error instanceof SecretNotFound)) throw error;
      first ??= error;
      if (next && !source.quiet) log("warn", `${error.message}; trying ${next}`);
    }
  }
  throw first!;
}

/** Runs `use` with a 0600 defaults file and a SQL client for the backup account. */
export async function asBackupUser<T>(
  context: AgentContext,
  use: (defaultsFile: string, sql: SqlClient) => Promise<T>,
): Promise<T> {
  const sources = [
    ...accountSources(context, "backup"),
    // Until `users ensure` has run after an upgrade, the server has the old secret's password.
    ...legacySource(context, context.config.secrets.backup),
  ];
  return withWorkingCredentials(context, sources, use);
}

/**
 * `use` with a defaults file of the first working credentials, and a SQL client that, refused
 * later (a rotation under a long-running command such as the streamer), finds the working ones
 * again and rewrites the file in place, so the tools it starts next use them too.
 */
async function withWorkingCredentials<T>(
  context: AgentContext,
  sources: readonly CredentialSource[],
  use: (defaultsFile: string, sql: SqlClient) => Promise<T>,
): Promise<T> {
  const { config } = context;
  const credentials = await workingCredentials(context, sources);
  return withDefaultsFile(credentials, config.connection, config.stateDir, async (file) => {
    const sql = new SqlClient(config.connection, credentials, async () => {
      log("info", "the server refused the account's password (rotated?); reading the secret again");
      for (const source of sources) source.forget?.();
      const working = await workingCredentials(context, sources);
      writeDefaultsFile(file, working, config.connection);
      return working;
    });
    try {
      return await use(file, sql);
    } finally {
      await sql.close();
    }
  });
}

/** The server's identity, refusing one without a binary log: `consequence` says what that breaks. */
export async function readBinloggingServer(
  engine: Engine,
  sql: SqlClient,
  consequence: string,
): Promise<Awaited<ReturnType<typeof readServerRole>>> {
  const server = await readServerRole(engine, sql);
  const { identity } = server;
  if (!identity.logBin) {
    throw new RewindError(
      ErrorNames.configInvalid,
      `binary logging is off on this server, so ${consequence}; enable log_bin and restart it`,
    );
  }
  return server;
}

/**
 * Runs `use` as the account that restores into a live server and replays binlogs: a login given
 * on the command line (`users ensure --login-user`), a configured `secrets.restore`, else the
 * accounts secret's admin account, else root over the socket (unix_socket or auth_socket, as
 * MariaDB and MySQL's Debian packages install it: how `users ensure` bootstraps a new cluster).
 */
export async function asRestoreUser<T>(
  context: AgentContext,
  use: (defaultsFile: string, sql: SqlClient) => Promise<T>,
  { login }: { readonly login?: DatabaseCredentials } = {},
): Promise<T> {
  return withWorkingCredentials(
    context,
    [
      ...(login
        ? [
            {
              describe: `${login.username} (the password given on stdin)`,
              load: async () => ({ ...login, cached: false }),
            },
          ]
        : []),
      ...legacySource(context, context.config.secrets.restore),
      ...accountSources(context, "admin"),
      ...(context.config.connection.socket ? [socketRoot] : []),
    ],
    use,
  );
}

const socketRoot: CredentialSource = {
  describe: "root over the socket",
  load: async () => ({ username: "root", password: "", cached: false }),
};

/** The replication account a restored replica logs in to its source with. */
export async function replicationCredentials(context: AgentContext): Promise<DatabaseCredentials> {
  const legacy = context.config.secrets.repl;
  if (legacy) return fetchCredentials(context.config, legacy);
  return fetchAccount(context.config, "replication");
}
