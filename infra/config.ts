import { readFileSync } from "node:fs";
import { z } from "zod";
import { EngineName } from "../core/engine.js";
import { validateClusterName } from "../core/layout.js";

/**
 * The one config file a platform engineer edits (DESIGN §6), validated at synth with errors that
 * name the field and the fix.
 */
const cron = z
  .string()
  .regex(
    /^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$|^rate\(\d+ (minute|minutes|hour|hours|day|days)\)$/,
    "an EventBridge Scheduler expression such as cron(15 3 * * ? *) or rate(1 day)",
  );

export const RewindConfigSchema = z
  .object({
    clusters: z
      .array(
        z
          .object({
            name: z.string().superRefine((name, ctx) => {
              const problem = validateClusterName(name);
              if (problem) ctx.addIssue({ code: "custom", message: problem });
            }),
            engine: EngineName,
            /** Hosts are found by the tag rewind:cluster=<name>. */
            sourcePolicy: z.enum(["primary", "replica", "prefer-replica"]).default("prefer-replica"),
            maxReplicaLagSeconds: z.number().int().positive().default(300),
          })
          .strict(),
      )
      .min(1, "list at least one cluster"),
    schedules: z
      .object({
        full: cron.default("cron(15 3 * * ? *)"),
        /** Binlog shipping interval; the RPO is about this long. */
        binlogIntervalMinutes: z.number().int().min(1).max(60).default(1),
        drill: cron.default("cron(0 6 ? * SUN *)"),
        /** Where a drill restores on the chosen host: an empty directory with room for a full restore. */
        drillDatadir: z
          .string()
          .regex(/^\/[A-Za-z0-9._/-]{1,200}$/, "an absolute path of letters, digits, '.', '_', '-' and '/'")
          .default("/var/tmp/rewind/drill"),
        timeZone: z.string().default("UTC"),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        fullBackups: z.number().int().min(1, "keep at least one full backup").default(7),
        pitrDays: z.number().int().min(1).default(7),
      })
      .strict()
      .prefault({}),
    alarms: z
      .object({
        /**
         * Alarm when the latest restorable point falls further behind now than this (the
         * RestorableLagSeconds metric, from the per-minute watchdog; binlog-stream ships within
         * `stream.intervalSeconds`, 5 by default).
         */
        rpoSeconds: z.number().int().min(5).default(30),
        /** Alarm when no backup of a cluster succeeded for this long (the full schedule plus slack). */
        hoursWithoutBackup: z
          .number()
          .int()
          .min(1)
          .max(168, "at most 168 hours (CloudWatch evaluates alarms over at most 7 days)")
          .default(26),
        notificationEmail: z.email().optional(),
      })
      .strict()
      .prefault({}),
    bucket: z
      .object({
        /**
         * Object Lock on every object version: `governance` (default; only a principal granted
         * s3:BypassGovernanceRetention can shorten it), `compliance` (nobody, not even root), or `off`.
         */
        objectLockMode: z.enum(["governance", "compliance", "off"]).default("governance"),
        /** Days each version is locked; by default the PITR window (retention.pitrDays). */
        objectLockDays: z.number().int().min(1).optional(),
        /** Days after which backups move to STANDARD_IA / GLACIER_IR. */
        infrequentAccessAfterDays: z.number().int().min(30).optional(),
        glacierInstantRetrievalAfterDays: z.number().int().min(90).optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const names = config.clusters.map((cluster) => cluster.name);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate)
      ctx.addIssue({ code: "custom", path: ["clusters"], message: `cluster "${duplicate}" is listed twice` });
    const lock = config.bucket.objectLockDays;
    if (lock !== undefined && config.bucket.objectLockMode === "off") {
      ctx.addIssue({
        code: "custom",
        path: ["bucket", "objectLockDays"],
        message:
          'objectLockDays needs Object Lock; drop it or set objectLockMode to "governance" or "compliance"',
      });
    }
    if (lock !== undefined && lock < config.retention.pitrDays) {
      ctx.addIssue({
        code: "custom",
        path: ["bucket", "objectLockDays"],
        message: `Object Lock (${lock} days) must cover the PITR window (retention.pitrDays = ${config.retention.pitrDays}); raise objectLockDays or lower pitrDays`,
      });
    }
  });

export type RewindConfig = z.infer<typeof RewindConfigSchema>;

/** The Object Lock every object version gets, or undefined when it is off. */
export function objectLock(
  config: RewindConfig,
): { readonly mode: "governance" | "compliance"; readonly days: number } | undefined {
  const { objectLockMode: mode, objectLockDays } = config.bucket;
  if (mode === "off") return undefined;
  return { mode, days: objectLockDays ?? config.retention.pitrDays };
}

export function parseRewindConfig(raw: unknown, where: string): RewindConfig {
  const result = RewindConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `${issue.path.join(".") || "(top level)"}: ${issue.message}`,
  );
  throw new Error(`Rewind config ${where} is invalid:\n  ${problems.join("\n  ")}`);
}

export function loadRewindConfig(file: string): RewindConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(
      `cannot read the Rewind config ${file}: ${(error as Error).message}; copy rewind.config.example.json to start`,
    );
  }
  return parseRewindConfig(raw, file);
}
