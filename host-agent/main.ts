import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { AgentResultLine } from "../core/agent-output.js";
import { ROTATE_STEPS, type RotateStep, SECRET_VERSION_ID } from "../core/contracts/agent-document.js";
import { ErrorNames, errorKind, RewindError } from "../core/errors.js";
import { HISTORY_ID } from "../core/history.js";
import { BACKUP_TYPES, BackupType } from "../core/manifest.js";
import { sfnClient } from "./clients.js";
import { backup } from "./commands/backup.js";
import { binlogPush } from "./commands/binlog-push.js";
import { binlogStream } from "./commands/binlog-stream.js";
import { install } from "./commands/install.js";
import { list } from "./commands/list.js";
import { readPlan, restore } from "./commands/restore.js";
import { restoreTables } from "./commands/restore-tables.js";
import { status } from "./commands/status.js";
import { verify } from "./commands/verify.js";
import { type AgentConfig, CONFIG_FLAGS, loadConfig } from "./config.js";
import { type AgentContext, makeContext } from "./context.js";
import { doctor } from "./doctor.js";
import { log } from "./log.js";
import type { DatabaseCredentials } from "./secrets.js";
import { TASK_TOKEN_VARIABLE, TaskReporter } from "./task-reporter.js";
import { ensureAccounts } from "./users/ensure.js";
import { rotateStep } from "./users/rotate.js";
import { AGENT_VERSION } from "./version.js";

const USAGE = `rewind-agent ${AGENT_VERSION}
usage: rewind-agent <command> --config <file> [options]

commands:
  status                               engine, role, GTID position, replication lag, binlogs, free space
  backup --type full                   stream a physical backup to S3; the manifest is written last
  list [--json]                        backups and the restorable window, with any gap (a table on stderr)
  binlog-stream [--once]               the service (rewind-agent install): follow the active binlog and ship
                                       every complete transaction within stream.intervalSeconds as chunks;
                                       only the primary ships unless stream.shipFrom is "all"; closed files
                                       are shipped whole; --once ships what is complete now and exits
  install [--no-start] [--no-accounts] install binlog-stream as a systemd service (rewind-binlog-stream,
                                       restarted on failure) with this bundle, and (re)start it;
                                       on a primary it then runs users ensure (--no-accounts: not);
                                       --unit-dir (default /etc/systemd/system), --install-dir (default
                                       /opt/rewind)
  binlog-push [--flush]                the watchdog (every minute): ships closed binlogs the streamer missed,
                                       or nothing while it runs, and reports its health; --flush closes
                                       the active binlog first
  doctor                               check what this host needs (accounts and grants, binary logging, the
                                       backup tool's version, the data key through KMS, S3, free space) and
                                       say how to fix each item that fails
  rotate --step set|test|rollback [--secret-version ID]
                                       a host's part in a rotation of the accounts secret (the rotation
                                       Lambda sends it): set the pending passwords (a replica: its
                                       source password), test them, or roll back to the current ones
  users ensure [--login-user U --login-password-stdin]
                                       on the primary: create or repair the accounts of the cluster's
                                       accounts secret (backup, replication, admin) with exactly the
                                       privileges Rewind needs; reports what it changed; as the admin
                                       account, or root over the socket on a new cluster, or as U with
                                       the password read from stdin (a root with a password)
  verify --backup-id ID [--deep]       check a backup against its manifest; --deep downloads and decodes it
  restore (--until TIME|GTID | --backup-id ID | --plan FILE) --datadir DIR [--move-aside] [--dry-run]
                                       plan; fetch and verify the backup and binlogs; prepare it beside DIR and
                                       swap it in; start the server (server.start) and replay the binlogs from
                                       the backup's exact position to the target (a time includes its whole
                                       second; a GTID includes that transaction); --no-start leaves a
                                       prepared datadir of a backup for you to start;
                                       --replica-of HOST:PORT then replicates from that primary (GTID);
                                       --replay client replays with mariadb-binlog | mariadb instead of
                                       the server's parallel replication applier;
                                       --scratch restores into an empty DIR, starts a private server on it
                                       (socket only, not the host's server), replays, runs CHECK TABLE, then
                                       stops it and removes DIR (restore drills);
                                       the restored server comes up read-only; --promote makes it the
                                       writable primary and begins a new history branching at the point
                                       restored to (roll back and carry on); --history ID resolves the
                                       target on another history than the current one (forensics)
  restore --tables db.t1,db.t2|db.* (--until TIME|GTID | --plan FILE) [--as SUFFIX] [--replace]
                                       restore into a scratch datadir under workDir (a private server),
                                       replay to the target, and copy the chosen tables into this host's
                                       live primary through its binlog (replicas follow): as
                                       <table>_restored_<time> (or <table>SUFFIX); --replace recreates
                                       dropped tables under their names and swaps existing ones in,
                                       keeping the old as <table>_before_<time>

options:
  --config FILE          the agent's JSON config (default /etc/rewind/agent.json)
  --task-token TOKEN     report to Step Functions: heartbeats, then success or failure (hosts get
                         the token in REWIND_TASK_TOKEN instead: argv is readable by every local user)
  --expect-cluster NAME  refuse, before anything is touched, unless the config is for this cluster
                         (the state machines pass it)
  ${CONFIG_FLAGS.map((flag) => `--${flag}`).join(", ")}
                         override that config field

Stdout carries one JSON result on its last line; logs go to stderr.`;

type Flags = Record<string, string | boolean | undefined>;

const DEFAULT_CONFIG = "/etc/rewind/agent.json";

function usageError(message: string): RewindError {
  return new RewindError(ErrorNames.usage, `${message}; run \`rewind-agent --help\` for usage`);
}

function requireString(flags: Flags, name: string): string {
  const value = flags[name];
  if (typeof value !== "string" || value === "") throw usageError(`--${name} is required`);
  return value;
}

/**
 * `users ensure --login-user U --login-password-stdin`: an account to set the accounts up with on
 * a server whose root has a password (MySQL from RPM packages, no auth_socket). The password is
 * read from stdin, never argv.
 */
async function bootstrapLogin(flags: Flags): Promise<DatabaseCredentials | undefined> {
  const user = flags["login-user"];
  const fromStdin = flags["login-password-stdin"] === true;
  if (user === undefined && !fromStdin) return undefined;
  if (typeof user !== "string" || user === "" || !fromStdin)
    throw usageError("--login-user NAME and --login-password-stdin go together (the password on stdin)");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (password === "") throw usageError("--login-password-stdin read no password from stdin");
  return { username: user, password };
}

async function dispatch(
  command: string,
  flags: Flags,
  context: AgentContext,
  subcommand: string | undefined,
): Promise<unknown> {
  switch (command) {
    case "doctor":
      return doctor(context);
    case "rotate": {
      const step = requireString(flags, "step");
      if (!(ROTATE_STEPS as readonly string[]).includes(step))
        throw usageError(`--step takes ${ROTATE_STEPS.join(", ")}, not "${step}"`);
      const version = flags["secret-version"];
      if (version !== undefined && (typeof version !== "string" || !SECRET_VERSION_ID.test(version)))
        throw usageError("--secret-version takes the rotation's version id (ClientRequestToken)");
      return rotateStep(context, step as RotateStep, version as string | undefined);
    }
    case "users":
      if (subcommand !== "ensure") throw usageError(`users takes ensure, not "${subcommand ?? ""}"`);
      return ensureAccounts(context, { login: await bootstrapLogin(flags) });
    case "status":
      return status(context);
    case "backup": {
      const type = BackupType.safeParse(requireString(flags, "type"));
      if (!type.success)
        throw usageError(`--type must be ${BACKUP_TYPES.join(" or ")}, not "${flags.type as string}"`);
      return backup(context, type.data);
    }
    case "list":
      return list(context, flags.json === true);
    case "binlog-push":
      return binlogPush(context, flags.flush === true);
    case "binlog-stream":
      return binlogStream(context, { once: flags.once === true });
    case "install":
      return install(context, {
        unitDir: typeof flags["unit-dir"] === "string" ? flags["unit-dir"] : "/etc/systemd/system",
        installDir: typeof flags["install-dir"] === "string" ? flags["install-dir"] : "/opt/rewind",
        configFile: typeof flags.config === "string" ? flags.config : DEFAULT_CONFIG,
        noStart: flags["no-start"] === true,
        noAccounts: flags["no-accounts"] === true,
      });
    case "restore": {
      // A plan from plan-restore says how to restore it (mode, datadir, replica source, tables):
      // the state machine sends the plan alone; flags given by hand still apply.
      // Read once: the restore goes on with it.
      const planned = typeof flags.plan === "string" ? await readPlan(context, flags.plan) : undefined;
      const how = planned?.stored;
      if (how?.mode === "tables" && flags.tables === undefined) {
        if (!how.tables) throw usageError(`the plan ${flags.plan} is for mode tables but names no tables`);
        return restoreTables(context, {
          tables: how.tables.tables.join(","),
          ...(how.tables.as ? { as: how.tables.as } : {}),
          replace: how.tables.replace,
          plan: flags.plan as string,
          planned: planned!,
          replay: replayMethod(flags.replay),
        });
      }
      if (typeof flags.tables === "string") {
        if (flags.datadir !== undefined || flags.scratch || flags["move-aside"] || flags["replica-of"])
          throw usageError(
            "--tables restores into a scratch datadir of its own and the live primary; drop --datadir, --scratch, --move-aside and --replica-of",
          );
        if (flags.until === undefined && flags.plan === undefined)
          throw usageError("--tables needs --until TIME|GTID (or --plan)");
        return restoreTables(context, {
          tables: flags.tables,
          ...(typeof flags.until === "string" ? { until: flags.until } : {}),
          ...(typeof flags.plan === "string" ? { plan: flags.plan } : {}),
          ...(typeof flags.as === "string" ? { as: flags.as } : {}),
          replace: flags.replace === true,
          ...(typeof flags.history === "string" ? { history: historyFlag(flags.history) } : {}),
          replay: replayMethod(flags.replay),
        });
      }
      return restore(context, {
        ...(typeof flags["backup-id"] === "string" ? { backupId: flags["backup-id"] } : {}),
        ...(typeof flags.until === "string" ? { until: flags.until } : {}),
        ...(typeof flags.plan === "string" ? { plan: flags.plan } : {}),
        ...(planned ? { planned } : {}),
        datadir: how?.datadir && flags.datadir === undefined ? how.datadir : requireString(flags, "datadir"),
        moveAside: flags["move-aside"] === true || how?.mode === "replace",
        dryRun: flags["dry-run"] === true,
        noStart: flags["no-start"] === true,
        scratch: flags.scratch === true || how?.mode === "scratch",
        ...(typeof flags["replica-of"] === "string"
          ? { replicaOf: flags["replica-of"] }
          : how?.replicaOf
            ? { replicaOf: how.replicaOf }
            : {}),
        promote: flags.promote === true || how?.promote === true,
        ...(typeof flags.history === "string" ? { history: historyFlag(flags.history) } : {}),
        replay: replayMethod(flags.replay),
      });
    }
    case "verify":
      return verify(context, requireString(flags, "backup-id"), flags.deep === true);
    default:
      throw usageError(`unknown command "${command}"`);
  }
}

function historyFlag(value: string): string {
  if (!HISTORY_ID.test(value))
    throw usageError(
      `--history takes a history id from \`rewind-agent list\` (such as 20261206T221500Z-db3) or initial, not "${value}"`,
    );
  return value;
}

function replayMethod(value: Flags[string]): "applier" | "client" {
  if (value === undefined || value === "applier") return "applier";
  if (value === "client") return "client";
  throw usageError(
    `--replay takes applier (the server's parallel replication applier, the default) or client (mariadb-binlog | mariadb), not "${value}"`,
  );
}

function parse(argv: string[]): {
  command: string | undefined;
  subcommand: string | undefined;
  flags: Flags;
} {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string" },
      "task-token": { type: "string" },
      "expect-cluster": { type: "string" },
      type: { type: "string" },
      "backup-id": { type: "string" },
      datadir: { type: "string" },
      until: { type: "string" },
      plan: { type: "string" },
      "move-aside": { type: "boolean" },
      "dry-run": { type: "boolean" },
      "no-start": { type: "boolean" },
      scratch: { type: "boolean" },
      "replica-of": { type: "string" },
      promote: { type: "boolean" },
      history: { type: "string" },
      replay: { type: "string" },
      tables: { type: "string" },
      as: { type: "string" },
      replace: { type: "boolean" },
      deep: { type: "boolean" },
      flush: { type: "boolean" },
      once: { type: "boolean" },
      "unit-dir": { type: "string" },
      "install-dir": { type: "string" },
      "no-accounts": { type: "boolean" },
      "login-user": { type: "string" },
      "login-password-stdin": { type: "boolean" },
      step: { type: "string" },
      "secret-version": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
      ...Object.fromEntries(CONFIG_FLAGS.map((flag) => [flag, { type: "string" as const }])),
    },
  });
  return { command: positionals[0], subcommand: positionals[1], flags: values };
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    return finish(usageError((error as Error).message));
  }
  const { command, subcommand, flags } = parsed;
  if (flags.version) {
    writeResultLine({ ok: true, result: { version: AGENT_VERSION } });
    return 0;
  }
  if (flags.help || !command) {
    process.stderr.write(`${USAGE}\n`);
    return command || flags.help ? 0 : 2;
  }
  const controller = new AbortController();
  let reporter: TaskReporter | undefined;
  const interrupt = (signal: string) => {
    log("warn", `received ${signal}; stopping`);
    controller.abort();
  };
  // The one-JSON-result contract holds even for a fault nobody foresaw.
  process.once("uncaughtException", (error) => {
    finish(
      new RewindError(ErrorNames.crashed, `the agent failed unexpectedly: ${error.message}`, error.stack),
      reporter,
    ).then((code) => process.exit(code));
  });
  process.once("SIGTERM", () => interrupt("SIGTERM"));
  process.once("SIGINT", () => interrupt("SIGINT"));

  // The token reaches the agent through its environment (never argv, which any local user can
  // read in /proc), and leaves it at once so the tools the agent starts never see it.
  const taskToken =
    typeof flags["task-token"] === "string" ? flags["task-token"] : process.env[TASK_TOKEN_VARIABLE];
  delete process.env[TASK_TOKEN_VARIABLE];
  delete process.env.SSM_TaskToken;
  const configFile = typeof flags.config === "string" ? flags.config : DEFAULT_CONFIG;
  let config: AgentConfig;
  try {
    const overrides = Object.fromEntries(
      Object.entries(flags).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
    );
    config = loadConfig(configFile, overrides);
  } catch (error) {
    // Step Functions must hear of a bad config too, not wait for the heartbeat timeout.
    if (taskToken) reporter = new TaskReporter(sfnClient(reportingSettings(configFile)), taskToken, 60_000);
    return finish(error as Error, reporter);
  }
  try {
    if (taskToken) reporter = new TaskReporter(sfnClient(config), taskToken, config.heartbeatSeconds * 1000);
    const stopBeating = reporter?.keepAlive();
    const context = makeContext(config, controller.signal, () => reporter?.heartbeat());
    try {
      checkRequestedCluster(flags, config, configFile);
      const result = await dispatch(command, flags, context, subcommand);
      await reporter?.succeed(result);
      // The cluster lets a metric filter on the SSM output log group dimension the binlog lag.
      writeResultLine({ ok: true, command, cluster: config.cluster, result });
      return 0;
    } finally {
      stopBeating?.();
    }
  } catch (error) {
    return finish(error as Error, reporter);
  }
}

/**
 * Where to report when the config cannot be loaded: whatever region and endpoint the file still
 * yields, else the environment: SSM Agent names the host's region in AWS_SSM_REGION_NAME (it sets
 * no AWS_REGION for Run Command; amazon-ssm-agent's runscript plugin), AWS_REGION by hand.
 */
function reportingSettings(configFile: string): { region: string; sfnEndpoint?: string } {
  let raw: { region?: unknown; sfnEndpoint?: unknown } = {};
  try {
    raw = JSON.parse(readFileSync(configFile, "utf8"));
  } catch {
    // Nothing readable: the environment decides.
  }
  return {
    region:
      typeof raw.region === "string"
        ? raw.region
        : (process.env.AWS_SSM_REGION_NAME ?? process.env.AWS_REGION ?? "us-east-1"),
    ...(typeof raw.sfnEndpoint === "string" ? { sfnEndpoint: raw.sfnEndpoint } : {}),
  };
}

/**
 * A state machine names the cluster it acts for (`--expect-cluster`, the document's Cluster): a
 * host whose config is for another cluster (a wrong tag, a copied config) is refused before
 * anything is read or touched, naming both.
 */
function checkRequestedCluster(flags: Flags, config: AgentConfig, configFile: string): void {
  const expected = flags["expect-cluster"];
  if (expected === undefined) return;
  if (typeof expected !== "string" || expected === "")
    throw usageError("--expect-cluster needs a cluster name");
  if (expected !== config.cluster) {
    throw new RewindError(
      ErrorNames.configInvalid,
      `this request is for cluster ${expected}, but this host's agent config (${configFile}) is for cluster ${config.cluster}; nothing was done. Fix the host's ${config.deployment}:cluster tag or its agent config so that they name the same cluster`,
    );
  }
}

/** The one result line, in the shape every reader parses it with (core/agent-output.ts). */
function writeResultLine(line: AgentResultLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function finish(error: Error, reporter?: TaskReporter): Promise<number> {
  const name = error instanceof RewindError ? error.name : ErrorNames.unexpected;
  const detail = error instanceof RewindError ? error.detail : error.stack;
  log("error", error.message, {
    ...(detail ? { detail } : {}),
    ...(error.cause !== undefined ? { cause: String(error.cause) } : {}),
  });
  if (reporter) {
    await reporter
      .fail(name, detail ? `${error.message}\n\n${detail}` : error.message)
      .catch((sendError: Error) =>
        log("error", "could not report the failure to Step Functions", { error: sendError.message }),
      );
  }
  writeResultLine({ ok: false, error: { name, message: error.message } });
  return errorKind(name)?.exitCode ?? 1;
}
