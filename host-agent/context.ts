import { ErrorNames, RewindError } from "../core/errors.js";
import type { ClusterLocation } from "../core/layout.js";
import type { AgentConfig } from "./config.js";
import { withDefaultsFile } from "./defaults-file.js";
import { type Engine, readServerRole } from "./engines/engine.js";
import { engineFor } from "./engines/index.js";
import { fetchCredentials, forgetCachedSecret } from "./secrets.js";
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

/** Runs `use` with a 0600 defaults file and a SQL client for the backup user. */
export async function asBackupUser<T>(
  context: AgentContext,
  use: (defaultsFile: string, sql: SqlClient) => Promise<T>,
): Promise<T> {
  const { config, engine } = context;
  const secretId = config.secrets.backup;
  let credentials = await fetchCredentials(config, secretId);
  if (credentials.cached) {
    // A cached password the server refuses (rotated since) is replaced by the current one.
    try {
      await withDefaultsFile(credentials, config.connection, config.stateDir, (file) =>
        new SqlClient(engine.tools.client, file).rows("SELECT 1"),
      );
    } catch (error) {
      if (!(error instanceof RewindError && error.name === ErrorNames.credentials)) throw error;
      forgetCachedSecret(config, secretId);
      credentials = await fetchCredentials(config, secretId, { fresh: true });
    }
  }
  return withDefaultsFile(credentials, config.connection, config.stateDir, (file) =>
    use(file, new SqlClient(engine.tools.client, file)),
  );
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

/** Runs `use` as the user that replays binlogs: the restore secret, or root over the socket. */
export async function asRestoreUser<T>(
  context: AgentContext,
  use: (defaultsFile: string, sql: SqlClient) => Promise<T>,
): Promise<T> {
  const secret = context.config.secrets.restore;
  const credentials = secret
    ? await fetchCredentials(context.config, secret)
    : { username: "root", password: "" };
  return withDefaultsFile(credentials, context.config.connection, context.config.stateDir, (file) =>
    use(file, new SqlClient(context.engine.tools.client, file)),
  );
}
