import { mkdirSync } from "node:fs";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { DoctorCheck, HostChecks } from "../core/contracts/host-checks.js";
import { ErrorNames, RewindError } from "../core/errors.js";
import { clusterPrefix, hostChecksKey } from "../core/layout.js";
import { s3Client } from "./clients.js";
import { accountsSecretId } from "./config.js";
import { type AgentContext, asBackupUser } from "./context.js";
import { freeBytes } from "./disk.js";
import { dataKeyring, decryptBuffer, encryptBuffer } from "./encryption.js";
import { readServerRole } from "./engines/engine.js";
import { log } from "./log.js";
import { putJson } from "./s3/put-json.js";
import { runTool } from "./tool.js";
import { missingPrivileges } from "./users/ensure.js";
import { AGENT_VERSION } from "./version.js";

export interface DoctorResult {
  readonly ok: boolean;
  readonly checks: readonly DoctorCheck[];
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
      checks.push({ check: name, ok: false, found: message.split("\n")[0]!, fix: fixFor(error) });
    }
  };

  let serverVersion: string | undefined;
  await check("database", () =>
    asBackupUser(context, async (_file, sql) => {
      const { identity, role } = await readServerRole(engine, sql);
      serverVersion = identity.version;
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
    await s3Client(config).send(
      new ListObjectsV2Command({
        Bucket: config.bucket,
        Prefix: clusterPrefix(context.location),
        MaxKeys: 1,
      }),
    );
    return { ok: true, found: `s3://${config.bucket}/${clusterPrefix(context.location)} is listable` };
  });

  await check("work space", async () => {
    mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
    const free = freeBytes(config.workDir);
    if (free !== null && free < config.minFreeMiB * MiB) {
      return {
        ok: false,
        found: `${Math.floor(free / MiB)} MiB free in ${config.workDir}`,
        fix: `free space there or point workDir elsewhere: a backup needs minFreeMiB (${config.minFreeMiB} MiB)`,
      };
    }
    return {
      ok: true,
      found: `${free === null ? "unknown" : Math.floor(free / MiB)} MiB free in ${config.workDir}`,
    };
  });

  return { ok: checks.every((c) => c.ok), checks };
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

/** The fix for a check that threw: the agent's own errors say it; AWS's are named by what to grant. */
function fixFor(error: unknown): string {
  const name = (error as Error).name;
  const message = (error as Error).message;
  if (name === "AccessDeniedException" || name === "AccessDenied" || /not authorized/i.test(message))
    return "attach the stack's HostPolicyArn-<cluster> output to the instance role (it allows this cluster's data keys, objects and secret)";
  if (error instanceof RewindError && message.includes(";"))
    return message.slice(message.indexOf(";") + 1).trim();
  if (name === "NotFoundException") return "set encryption.kmsKeyId to the stack's KeyArn output";
  if (/ENOENT|not found|exited with/i.test(message))
    return "install the tool (scripts/setup.sh lists the packages) and put it on root's PATH";
  return "see the message";
}
