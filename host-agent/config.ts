import { readFileSync } from "node:fs";
import os from "node:os";
import { z } from "zod";
import { accountsSecretName } from "../core/contracts/accounts.js";
import { S3_BUCKET_NAME } from "../core/contracts/agent-document.js";
import { DeploymentName } from "../core/contracts/deployment.js";
import { EngineName } from "../core/engine.js";
import { configError } from "../core/errors.js";
import { validateClusterName } from "../core/layout.js";
import { engineFor } from "./engines/index.js";

const MiB = 1024 * 1024;

/** One JSON file on the host (DESIGN §4); flags override single fields. */
export const AgentConfigSchema = z
  .object({
    cluster: z.string().superRefine((name, ctx) => {
      const problem = validateClusterName(name);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
    engine: EngineName,
    bucket: z.string().regex(S3_BUCKET_NAME, "an S3 bucket name"),
    /** Not supported: keys start with the cluster's name, as the stack's IAM expects. */
    prefix: z
      .never({
        error:
          "prefix is not supported: Rewind's keys start with the cluster name, the prefix the stack's IAM policies are scoped to; remove it",
      })
      .optional(),
    region: z.string().default("us-east-1"),
    /**
     * The Rewind deployment this host belongs to (the stack's `deployment`, default `rewind`): it
     * names the accounts secret (`<deployment>/<cluster>/accounts`) and the host's tag
     * (`<deployment>:cluster`).
     */
    deployment: DeploymentName,
    /** Only for the sandbox or S3-compatible stores; AWS needs none. */
    s3Endpoint: z.url().optional(),
    /** Step Functions, KMS and Secrets Manager endpoint overrides (the sandbox, VPC endpoints). */
    sfnEndpoint: z.url().optional(),
    kmsEndpoint: z.url().optional(),
    secretsManagerEndpoint: z.url().optional(),
    host: z
      .string()
      .min(1)
      .default(() => os.hostname()),
    connection: z
      .object({
        socket: z.string().optional(),
        host: z.string().optional(),
        port: z.number().int().min(1).max(65535).optional(),
      })
      .refine((c) => c.socket !== undefined || c.host !== undefined, "set `socket` or `host` (and `port`)"),
    secrets: z
      .object({
        /**
         * The secret holding every account Rewind uses (core/contracts/accounts.ts); the
         * stack creates `<deployment>/<cluster>/accounts`, the default.
         */
        accounts: z.string().min(1).optional(),
        /**
         * Secrets of one user each, `{"username", "password"}`, from before the accounts
         * secret: still read, after the accounts secret (backup, restore) or instead of it (repl),
         * until `users ensure` has moved the servers onto the accounts secret; then remove them.
         */
        backup: z.string().min(1).optional(),
        restore: z.string().min(1).optional(),
        repl: z.string().min(1).optional(),
      })
      .default({}),
    restore: z
      .object({
        /** Applier workers for binlog replay (slave_parallel_threads / replica_parallel_workers). */
        parallelWorkers: z.number().int().min(1).max(256).default(4),
        replayTimeoutSeconds: z
          .number()
          .int()
          .min(10)
          .default(6 * 3600),
      })
      .prefault({}),
    /**
     * How the agent stops and starts the database server around a restore; by default
     * `systemctl start|stop` of the engine's unit (mariadb, mysql).
     */
    server: z
      .object({
        start: z.array(z.string()).min(1).optional(),
        stop: z.array(z.string()).min(1).optional(),
      })
      .prefault({}),
    encryption: z.union([
      z.object({ kmsKeyId: z.string().min(1) }).strict(),
      /** Hosts outside AWS without KMS: a local 256-bit key file (DESIGN §4). */
      z.object({ keyFile: z.string().min(1), keyName: z.string().default("rewind-local") }).strict(),
    ]),
    /** The server's option files, stored in the manifest (never auto.cnf). */
    myCnfPaths: z.array(z.string()).default(["/etc/mysql/my.cnf"]),
    stateDir: z.string().default("/var/lib/rewind"),
    /**
     * How long a database user's secret is reused from a root-only (0600) cache under stateDir
     * before Secrets Manager is asked again; 0 asks on every run. A cached password the server
     * refuses is fetched afresh at once, so a rotation is picked up on the next run.
     */
    secretCacheSeconds: z.number().int().min(0).max(86_400).default(3600),
    workDir: z.string().default("/var/tmp/rewind"),
    minFreeMiB: z.number().int().nonnegative().default(1024),
    heartbeatSeconds: z.number().int().min(1).max(3600).default(60),
    /** `binlog-stream`, the service that ships the active binlog as it is written. */
    stream: z
      .object({
        /** Every complete transaction is in S3 within this many seconds of reaching the binlog (the RPO). */
        intervalSeconds: z.number().min(1).max(300).default(5),
        /** Only the cluster's current primary ships (the default), or every host. */
        shipFrom: z.enum(["primary", "all"]).default("primary"),
        /** How often the active binlog is read for new transactions. */
        pollMilliseconds: z.number().int().min(20).max(5000).default(200),
        /** How often the server's role is checked (a failover is noticed within this). */
        roleCheckSeconds: z.number().min(1).max(300).default(5),
        /**
         * How often the primary checks that its history is still the cluster's current one (one
         * LIST; a roll-back elsewhere makes this host a second primary, reported by the watchdog).
         */
        historyCheckSeconds: z.number().min(5).max(3600).default(60),
        /** A chunk holds at most this much of the binlog; more waits for the next chunk. */
        maxChunkMiB: z.number().int().min(1).max(1024).default(64),
        /**
         * The primary rotates its binlog (FLUSH BINARY LOGS) once the file has been open this long
         * or has this many chunks in S3, so that a quiet server's file, and the work of planning
         * a restore through it, stay bounded; a file with nothing shipped is never rotated.
         */
        rotateMinutes: z.number().int().min(1).max(1440).default(60),
        maxChunksPerFile: z.number().int().min(2).max(100_000).default(1000),
      })
      .prefault({}),
    backup: z
      .object({
        parallel: z.number().int().min(1).max(64).default(4),
        compressionLevel: z.number().int().min(1).max(19).default(3),
        /** zstd worker threads; 0 means one per core. */
        compressionThreads: z.number().int().min(0).max(256).default(0),
        partSizeMiB: z
          .number()
          .int()
          .min(5)
          .max(5 * 1024)
          .default(8),
        segmentSizeMiB: z.number().int().min(5).default(4096),
        uploadConcurrency: z.number().int().min(1).max(32).default(4),
        /**
         * The stored stream's blocks (core/stream-blocks.ts): each decodes on its own, so a table
         * restore fetches the blocks holding the chosen tables. Smaller blocks fetch less around a
         * table and make the manifest's index longer; memory is about three blocks.
         */
        blockSizeMiB: z.number().int().min(1).max(1024).default(16),
        /** `backup --type incremental` (DESIGN §3: chains). */
        incremental: z
          .object({
            /** Incrementals after a full backup before the next incremental is taken as a full one. */
            maxChain: z.number().int().min(1).max(100).default(6),
            /**
             * When there is no valid base (no backup of this datadir since it was installed or
             * restored, the base or its chain gone from S3): take a full backup and say so, or refuse.
             */
            whenNoBase: z.enum(["full", "refuse"]).default("full"),
          })
          .prefault({}),
      })
      .prefault({})
      .refine(
        (b) => b.segmentSizeMiB >= b.partSizeMiB,
        "backup.segmentSizeMiB must be at least backup.partSizeMiB",
      )
      .refine(
        (b) => Math.ceil(b.segmentSizeMiB / b.partSizeMiB) <= 10_000,
        "a segment would need more than 10,000 parts: raise backup.partSizeMiB or lower backup.segmentSizeMiB",
      ),
  })
  .strict()
  .transform((config) => {
    const unit = engineFor(config.engine).serviceName;
    return {
      ...config,
      server: {
        start: config.server.start ?? ["systemctl", "start", unit],
        stop: config.server.stop ?? ["systemctl", "stop", unit],
      },
    };
  });

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export function partSize(config: AgentConfig): number {
  return config.backup.partSizeMiB * MiB;
}

export function segmentSize(config: AgentConfig): number {
  return config.backup.segmentSizeMiB * MiB;
}

/** Flags that override a field of the config file: `--flag value` → path in the config. */
const FLAG_PATHS: Record<string, { path: string[]; type: "string" | "number" }> = {
  bucket: { path: ["bucket"], type: "string" },
  cluster: { path: ["cluster"], type: "string" },
  region: { path: ["region"], type: "string" },
  "s3-endpoint": { path: ["s3Endpoint"], type: "string" },
  host: { path: ["host"], type: "string" },
  socket: { path: ["connection", "socket"], type: "string" },
  parallel: { path: ["backup", "parallel"], type: "number" },
  "part-size-mib": { path: ["backup", "partSizeMiB"], type: "number" },
  "segment-size-mib": { path: ["backup", "segmentSizeMiB"], type: "number" },
  "upload-concurrency": { path: ["backup", "uploadConcurrency"], type: "number" },
  "compression-level": { path: ["backup", "compressionLevel"], type: "number" },
};

export const CONFIG_FLAGS = Object.keys(FLAG_PATHS);

export function loadConfig(file: string, flags: Readonly<Record<string, string>>): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : (error as Error).message;
    throw configError(
      `config file ${file}: ${reason}; pass --config with the path of the agent's JSON config`,
    );
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw configError(`config file ${file} must hold a JSON object`);
  }
  const merged = structuredClone(raw) as Record<string, unknown>;
  for (const [flag, value] of Object.entries(flags)) {
    const target = FLAG_PATHS[flag];
    if (!target) continue;
    const parsed = target.type === "number" ? Number(value) : value;
    if (target.type === "number" && !Number.isFinite(parsed)) {
      throw configError(`--${flag} must be a number, got "${value}"`);
    }
    let node = merged;
    for (const key of target.path.slice(0, -1)) {
      node[key] = typeof node[key] === "object" && node[key] !== null ? node[key] : {};
      node = node[key] as Record<string, unknown>;
    }
    node[target.path.at(-1)!] = parsed;
  }
  return parseConfig(merged, file);
}

export function parseConfig(raw: unknown, where: string): AgentConfig {
  const result = AgentConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.join(".") || "(top level)";
    return `${field}: ${issue.message}`;
  });
  throw configError(`config ${where} is invalid:\n  ${problems.join("\n  ")}`);
}

/** The cluster's accounts secret: the config's, or the one the stack creates. */
export function accountsSecretId(config: Pick<AgentConfig, "cluster" | "secrets" | "deployment">): string {
  return config.secrets.accounts ?? accountsSecretName(config.cluster, config.deployment);
}
