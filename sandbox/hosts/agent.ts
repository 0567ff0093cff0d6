import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAgentResultLine } from "../../core/agent-output.js";
import {
  ACCOUNTS_SEED,
  type AccountName,
  accountFrom,
  accountsSecretName,
  initialAccountsTemplate,
  parseAccountsSecret,
} from "../../core/contracts/accounts.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { SandboxIam } from "../aws/iam.js";
import { LocalSecretsManager } from "../aws/secrets-manager.js";
import { withoutRegion } from "../aws/ssm.js";
import type { MariaDbServer } from "./mariadb-server.js";

export interface LocalAgentSetup {
  readonly configFile: string;
  /** Where the agent reads its database users: the Secrets Manager stand-in. */
  readonly secrets: LocalSecretsManager;
  /** The cluster's accounts secret (core/contracts/accounts.ts). */
  readonly accountsSecretId: string;
  readonly config: Record<string, unknown>;
}

/** One account's credentials as the accounts secret holds them now. */
export function accountOf(
  setup: Pick<LocalAgentSetup, "secrets" | "accountsSecretId">,
  account: AccountName,
) {
  const secret = parseAccountsSecret(
    JSON.stringify(setup.secrets.current(setup.accountsSecretId)),
    setup.accountsSecretId,
  );
  const credentials = accountFrom(secret, account);
  if (!credentials) throw new Error(`${setup.accountsSecretId} has no ${account} account`);
  return credentials;
}

/**
 * Stores the cluster's accounts secret as the stack creates it (the usernames and a generated
 * seed), unless the cluster has one already.
 */
export function putInitialAccountsSecret(
  secrets: LocalSecretsManager,
  cluster: string,
  deployment?: string,
): string {
  const id = accountsSecretName(cluster, deployment);
  if (!secrets.has(id)) {
    secrets.put(id, {
      ...initialAccountsTemplate(),
      [ACCOUNTS_SEED.key]: randomBytes(ACCOUNTS_SEED.length)
        .toString("base64url")
        .slice(0, ACCOUNTS_SEED.length),
    });
  }
  return id;
}

/**
 * Writes what the agent needs on a sandbox host: the cluster's accounts secret in the Secrets
 * Manager stand-in (one is started when none is given) and the accounts on the server, the data key (a KMS key of the
 * KMS stand-in, or a local 256-bit key file as on hosts outside AWS), and the config.
 */
export async function setUpLocalAgent(options: {
  readonly dir: string;
  readonly server: MariaDbServer;
  /** Where `users ensure` runs: a replica gets the accounts through replication from its primary. */
  readonly createUserOn?: MariaDbServer;
  /** `ensure` (the default): run `users ensure` on the primary; `none`: leave the server's accounts alone. */
  readonly accounts?: "ensure" | "none";
  /** The agent bundle that runs `users ensure` (default: dist/rewind-agent.mjs) and its environment. */
  readonly bundle?: string;
  readonly agentEnv?: NodeJS.ProcessEnv;
  readonly s3Endpoint: string;
  readonly bucket: string;
  readonly cluster: string;
  /** The deployment the host belongs to (default `rewind`): its accounts secret's name. */
  readonly deployment?: string;
  readonly host: string;
  readonly secrets?: LocalSecretsManager;
  /** A KMS key and the KMS endpoint; without it, a local key file. */
  readonly kms?: { readonly keyArn: string; readonly endpoint: string };
  readonly backup?: Record<string, number>;
  readonly extra?: Record<string, unknown>;
}): Promise<LocalAgentSetup> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const secrets = options.secrets ?? (await startSecretsManager());
  const accountsSecretId = putInitialAccountsSecret(secrets, options.cluster, options.deployment);
  let encryption: Record<string, string>;
  if (options.kms) {
    encryption = { kmsKeyId: options.kms.keyArn };
  } else {
    const keyFile = path.join(options.dir, "backup.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"), { mode: 0o600 });
    encryption = { keyFile };
  }
  const config = {
    cluster: options.cluster,
    ...(options.deployment ? { deployment: options.deployment } : {}),
    engine: "mariadb",
    bucket: options.bucket,
    region: "us-east-1",
    s3Endpoint: options.s3Endpoint,
    secretsManagerEndpoint: secrets.endpoint,
    ...(options.kms ? { kmsEndpoint: options.kms.endpoint } : {}),
    host: options.host,
    connection: { socket: options.server.socket },
    encryption,
    myCnfPaths: [options.server.defaultsFile],
    stateDir: path.join(options.dir, "state"),
    workDir: path.join(options.dir, "work"),
    minFreeMiB: 64,
    backup: { parallel: 2, ...options.backup },
    ...options.extra,
  };
  const configFile = path.join(options.dir, "agent.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  if ((options.accounts ?? "ensure") === "ensure") {
    // Onboarding as an operator does it: `users ensure` on the primary (the server itself, or the
    // primary it replicates from), which creates the accounts from the secret as root over the socket.
    const primary = options.createUserOn ?? options.server;
    const ensureConfig = path.join(options.dir, "ensure.json");
    writeFileSync(ensureConfig, JSON.stringify({ ...config, connection: { socket: primary.socket } }), {
      mode: 0o600,
    });
    const run = await runAgent(
      options.bundle ?? AGENT_BUNDLE,
      ["users", "ensure", "--config", ensureConfig],
      options.agentEnv,
    );
    if (!run.output?.ok) {
      throw new Error(`users ensure failed on ${options.host}: ${run.output?.error?.message ?? run.stderr}`);
    }
  }
  return { configFile, secrets, accountsSecretId, config };
}

/** A Secrets Manager stand-in that lets every caller in (tests outside the sandbox). */
export async function startSecretsManager(): Promise<LocalSecretsManager> {
  const secrets = new LocalSecretsManager(new SandboxIam(undefined));
  await secrets.listen();
  secrets.unref();
  return secrets;
}

const START_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "start-mariadbd.sh");

/**
 * The agent config of a restore target on this machine: the source's config, pointed at the
 * target's socket, with the sandbox's stand-ins for `systemctl start|stop mariadb`.
 */
export function writeRestoreTargetConfig(
  sourceConfigFile: string,
  target: MariaDbServer,
  file: string,
): string {
  const config = JSON.parse(readFileSync(sourceConfigFile, "utf8"));
  writeFileSync(
    file,
    JSON.stringify({
      ...config,
      // Another host: state of its own (a restore there forgets that host's backup lineage and
      // sets its history marker, never the source host's).
      stateDir: `${file.replace(/\.json$/, "")}-state`,
      connection: { socket: target.socket },
      server: {
        start: [START_SCRIPT, target.defaultsFile],
        stop: ["mariadb-admin", `--defaults-file=${target.defaultsFile}`, "-uroot", "shutdown"],
      },
    }),
    { mode: 0o600 },
  );
  return file;
}

/** A result line as tests read it: either branch of core's AgentResultLine, its result as a record. */
export type AgentOutput = {
  readonly ok: boolean;
  readonly command?: string;
  readonly cluster?: string;
  readonly result?: Record<string, unknown> & { backupId?: string };
  readonly error?: { name: string; message: string };
};

/** The agent's result line, through the one parser the Lambdas use too. */
export function agentOutputOf(stdout: string): AgentOutput | undefined {
  return parseAgentResultLine(stdout) as AgentOutput | undefined;
}

export interface AgentRun {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The result line (the last line of stdout), parsed with core's schema; undefined without one. */
  readonly output: AgentOutput | undefined;
  readonly stderr: string;
}

/** Runs the bundled agent as a database host would: `node rewind-agent.mjs …`, static credentials for S3. */
export function startAgent(
  bundle: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  /** Written to its stdin (a password for `--login-password-stdin`); stdin is closed otherwise. */
  input?: string,
) {
  const child = spawn(process.execPath, [bundle, ...args], {
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    // No AWS_REGION: nothing sets it on a host (the config names the region).
    env: {
      ...withoutRegion(process.env),
      AWS_ACCESS_KEY_ID: "sandbox",
      AWS_SECRET_ACCESS_KEY: "sandbox",
      ...env,
    },
  });
  if (input !== undefined) child.stdin!.end(input);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<AgentRun>((resolve) => {
    child.once("close", (exitCode, signal) => {
      resolve({ exitCode, signal, output: agentOutputOf(stdout), stderr });
    });
  });
  /** What it logged so far, for a long-running command (binlog-stream). */
  const log = () => stderr;
  return { child, done, log };
}

export function runAgent(
  bundle: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  input?: string,
): Promise<AgentRun> {
  return startAgent(bundle, args, env, input).done;
}
