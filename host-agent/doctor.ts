import { mkdirSync } from "node:fs";
import { DeleteObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { MINIMUM_SSM_AGENT } from "../core/contracts/agent-document.js";
import { deploymentNames } from "../core/contracts/deployment.js";
import type { DoctorCheck, HostChecks } from "../core/contracts/host-checks.js";
import { ErrorNames, RewindError } from "../core/errors.js";
import { clusterPrefix, hostChecksKey, hostProbeKey } from "../core/layout.js";
import { readNewestBackups } from "../core/store/catalog.js";
import { readHostChecks } from "../core/store/host-checks.js";
import { s3Client } from "./clients.js";
import { type AgentConfig, accountsSecretId } from "./config.js";
import { type AgentContext, asBackupUser } from "./context.js";
import { freeBytes } from "./disk.js";
import { dataKeyring, decryptBuffer, encryptBuffer } from "./encryption.js";
import { binlogSettingProblems, readServerRole } from "./engines/engine.js";
import { log } from "./log.js";
import { putJson } from "./s3/put-json.js";
import { runTool } from "./tool.js";
import { missingPrivileges } from "./users/ensure.js";
import { AGENT_VERSION } from "./version.js";

export interface DoctorResult {
  readonly ok: boolean;
  readonly checks: readonly DoctorCheck[];
  /** The server's server_id, when the database answered. */
  readonly serverId?: number;
}

const MiB = 1024 * 1024;

/**
 * `rewind-agent doctor`: checks what this host needs for Rewind, each item on its own so one
 * failure does not hide the next, and says how to fix each that fails: the database accounts
 * and their grants, binary logging, the backup tool and its version against the server's, the
 * data key through KMS (what the instance role allows), the cluster's S3 prefix, free space.
 * Fails (ConfigInvalid) when any check fails, listing every fix.
 */
export async function doctor(context: AgentContext): Promise<DoctorResult> {
  const { checks } = await runChecks(context);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    throw new RewindError(
      ErrorNames.configInvalid,
      `doctor found ${failed.length} problem(s): ${failed.map((c) => `${c.check}: ${c.found}; ${c.fix}`).join(" | ")}`,
      JSON.stringify(checks),
    );
  }
  return { ok: true, checks };
}

/** Every check, passed or failed; never throws for a failed one. */
export async function runChecks(context: AgentContext): Promise<DoctorResult> {
  const { config, engine } = context;
  const checks: DoctorCheck[] = [];
  const check = async (name: string, run: () => Promise<Omit<DoctorCheck, "check">>) => {
    try {
      checks.push({ check: name, ...(await run()) });
    } catch (error) {
      const message = (error as Error).message;
      checks.push({ check: name, ok: false, found: message.split("\n")[0]!, fix: fixFor(error, config) });
    }
  };

  await check("SSM Agent", async () => {
    const version = await ssmAgentVersion();
    if (!version) {
      return {
        ok: false,
        found: "amazon-ssm-agent is not installed (not on PATH, in /usr/bin or /snap/amazon-ssm-agent)",
        fix: `install SSM Agent ${MINIMUM_SSM_AGENT} or later: the state machines, the schedules and the install association reach this host only through it`,
      };
    }
    if (compareVersions(version, MINIMUM_SSM_AGENT) < 0) {
      return {
        ok: false,
        found: `SSM Agent ${version}`,
        fix: `update amazon-ssm-agent to ${MINIMUM_SSM_AGENT} or later (the AWS-UpdateSSMAgent document): older agents pass Rewind-RunAgent no parameters`,
      };
    }
    return { ok: true, found: `SSM Agent ${version}` };
  });

  await check("node", async () => {
    const fix =
      "install Node.js 22 or later as `node` on root's PATH: the SSM documents run `node rewind-agent.mjs`";
    let version: string;
    try {
      version = (await runTool("node", ["--version"])).stdout.trim();
    } catch (error) {
      return { ok: false, found: `no node on PATH (${(error as Error).message.split("\n")[0]})`, fix };
    }
    const major = Number(/^v(\d+)\./.exec(version)?.[1]);
    if (!(major >= 22)) return { ok: false, found: `node ${version} on PATH`, fix };
    return { ok: true, found: `node ${version}` };
  });

  let serverVersion: string | undefined;
  let serverId: number | undefined;
  await check("database", () =>
    asBackupUser(context, async (_file, sql) => {
      const { identity, role } = await readServerRole(engine, sql);
      serverVersion = identity.version;
      serverId = identity.serverId;
      const found = `${engine.name} ${identity.version}, ${role}, logged in as the backup account of ${accountsSecretId(config)}`;
      const missing = await missingPrivileges(context, sql, "backup");
      if (missing.length > 0) {
        return {
          ok: false,
          found: `the backup account lacks ${missing.join(", ")}`,
          fix: "run `rewind-agent users ensure` on the primary: it grants what core/privileges.ts lists",
        };
      }
      if (!identity.logBin) {
        return {
          ok: false,
          found: "binary logging is off: no point-in-time restore is possible",
          fix: "set log_bin (and a server_id) in the server's config and restart it",
        };
      }
      return { ok: true, found };
    }),
  );

  await check("binlog settings", () =>
    asBackupUser(context, async (_file, sql) => {
      const problems = await binlogSettingProblems(engine, sql);
      if (problems.length > 0) {
        return {
          ok: false,
          found: problems.map((p) => p.found).join("; "),
          fix: problems.map((p) => p.fix).join("; "),
        };
      }
      const settings = engine.requiredBinlogSettings.map((s) => s.names[0]).join(", ");
      return { ok: true, found: `${settings} as point-in-time restore needs` };
    }),
  );

  await check("backup tool", async () => {
    const output = await runTool(engine.tools.backup, ["--version"]);
    const version = engine.parseToolVersion(output.stderr + output.stdout);
    if (serverVersion) engine.checkToolVersion(serverVersion, version);
    return { ok: true, found: `${engine.tools.backup} ${version}` };
  });

  // The data tools that stay processes: decoding, binlog replay, the table copy.
  for (const tool of [
    "zstd",
    engine.tools.stream,
    engine.tools.binlog,
    engine.tools.client,
    engine.tools.dump,
  ]) {
    await check(`${tool}`, async () => {
      await runTool(tool, ["--help"]);
      return { ok: true, found: `${tool} runs` };
    });
  }

  await check("data key", async () => {
    const { keyring, keyId } = dataKeyring(config);
    const context = { cluster: config.cluster, backupId: "doctor" };
    const sealed = await encryptBuffer(keyring, Buffer.from("rewind doctor"), context);
    const opened = await decryptBuffer(keyring, sealed, context);
    if (opened.toString() !== "rewind doctor") throw new Error("the data key did not round-trip");
    return { ok: true, found: `a data key from ${keyId} with the context {cluster: ${config.cluster}}` };
  });

  await check("S3", async () => {
    const client = s3Client(config);
    const prefix = `s3://${config.bucket}/${clusterPrefix(context.location)}`;
    await client.send(
      new ListObjectsV2Command({
        Bucket: config.bucket,
        Prefix: clusterPrefix(context.location),
        MaxKeys: 1,
      }),
    );
    // A host writes its cluster's prefix, and must never delete: what it backs up would be at
    // the mercy of whoever controls it.
    const probe = hostProbeKey(context.location, config.host);
    await putJson(client, config.bucket, probe, { host: config.host, at: new Date().toISOString() });
    try {
      await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: probe }));
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === "AccessDenied" || name === "AccessDeniedException")
        return { ok: true, found: `${prefix} is listable and writable; deleting is refused, as it must be` };
      throw error;
    }
    return {
      ok: false,
      found: `the instance role may delete objects in ${prefix}`,
      fix: `give the instance role only the stack's ${hostPolicyName(config)} policy (no s3:DeleteObject): a host that can delete can destroy the backups it protects`,
    };
  });

  await check("server_id", async () => {
    if (serverId === undefined)
      return { ok: false, found: "the database did not answer", fix: "see the database check" };
    if (serverId === 0) {
      return {
        ok: false,
        found: "server_id is 0",
        fix: "give the server a non-zero server_id, unique in the cluster, in its config",
      };
    }
    const others = (await readHostChecks(s3Client(config), config.bucket, context.location)).filter(
      (h) => h.host !== config.host && !h.stale && h.serverId === serverId,
    );
    if (others.length > 0) {
      return {
        ok: false,
        found: `server_id ${serverId} is also ${others.map((h) => h.host).join(", ")}'s`,
        fix: "give each server of the cluster its own server_id: replication skips events of its own id, and binlog sources are named by it",
      };
    }
    return {
      ok: true,
      found: `server_id ${serverId}, unique among the cluster's hosts that recorded theirs`,
    };
  });

  await check("work space", async () => {
    mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
    const free = freeBytes(config.workDir);
    // A table restore (and a drill, by default beside it) restores the newest backup whole there.
    const [newest] = await readNewestBackups(s3Client(config), config.bucket, context.location, () => true);
    const restoreBytes = newest?.rawBytes ?? 0;
    const needed = config.minFreeMiB * MiB + restoreBytes;
    const what = newest
      ? `minFreeMiB (${config.minFreeMiB} MiB) and a scratch restore of backup ${newest.backupId} (${Math.ceil(restoreBytes / MiB)} MiB)`
      : `minFreeMiB (${config.minFreeMiB} MiB)`;
    if (free !== null && free < needed) {
      return {
        ok: false,
        found: `${Math.floor(free / MiB)} MiB free in ${config.workDir}; ${Math.ceil(needed / MiB)} MiB needed`,
        fix: `free space there or point workDir elsewhere: it must hold ${what}`,
      };
    }
    return {
      ok: true,
      found: `${free === null ? "unknown" : Math.floor(free / MiB)} MiB free in ${config.workDir}, room for ${what}`,
    };
  });

  return { ok: checks.every((c) => c.ok), checks, ...(serverId !== undefined ? { serverId } : {}) };
}

/**
 * Writes this host's doctor record where `list` reads it (`<cluster>/hosts/<host>/doctor.json`);
 * the install association does each run. A failed write is logged, not fatal: the checks' result
 * is in the command's output either way.
 */
export async function recordChecks(context: AgentContext, result: DoctorResult): Promise<void> {
  const { config } = context;
  const record: HostChecks = {
    host: config.host,
    checkedAt: new Date().toISOString(),
    agentVersion: AGENT_VERSION,
    ok: result.ok,
    serverId: result.serverId ?? null,
    checks: [...result.checks],
  };
  const key = hostChecksKey(context.location, config.host);
  try {
    await putJson(s3Client(config), config.bucket, key, record);
  } catch (error) {
    log("warn", `could not record the doctor's result at s3://${config.bucket}/${key}`, {
      error: (error as Error).message,
    });
  }
}

/** The installed SSM Agent's version, or undefined when none is found. */
async function ssmAgentVersion(): Promise<string | undefined> {
  for (const binary of [
    "amazon-ssm-agent",
    "/usr/bin/amazon-ssm-agent",
    "/snap/amazon-ssm-agent/current/amazon-ssm-agent",
  ]) {
    try {
      const { stdout, stderr } = await runTool(binary, ["-version"]);
      const version = /(\d+\.\d+\.\d+\.\d+)/.exec(stdout + stderr)?.[1];
      if (version) return version;
    } catch {
      // Not there: the next place.
    }
  }
  return undefined;
}

/** Dotted versions compared part by part as numbers. */
export function compareVersions(a: string, b: string): number {
  const left = a.split(".").map(Number);
  const right = b.split(".").map(Number);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const difference = (left[i] ?? 0) - (right[i] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}

/** The managed policy the stack makes for this host's cluster (`rewind-host-orders`). */
function hostPolicyName(config: Pick<AgentConfig, "cluster" | "deployment">): string {
  return deploymentNames(config.deployment).hostPolicy(config.cluster);
}

/** The fix for a check that threw: the agent's own errors say it; AWS's are named by what to grant. */
function fixFor(error: unknown, config: AgentConfig): string {
  const name = (error as Error).name;
  const message = (error as Error).message;
  if (name === "AccessDeniedException" || name === "AccessDenied" || /not authorized/i.test(message))
    return `attach the stack's ${hostPolicyName(config)} managed policy to the instance role (it allows this cluster's data keys, objects and secret)`;
  if (error instanceof RewindError && message.includes(";"))
    return message.slice(message.indexOf(";") + 1).trim();
  if (name === "NotFoundException") return "set encryption.kmsKeyId to the stack's KeyArn output";
  if (/ENOENT|not found|exited with/i.test(message))
    return "install the tool (scripts/setup.sh lists the packages) and put it on root's PATH";
  return "see the message";
}
