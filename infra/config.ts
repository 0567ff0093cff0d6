import { readFileSync } from "node:fs";
import { z } from "zod";
import { DeploymentName } from "../core/contracts/deployment.js";
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
    /**
     * The deployment's name: it prefixes every name the stack gives (core/contracts/deployment.ts),
     * so a second deployment (staging beside production) can share the account and region. Hosts
     * of a deployment other than `rewind` set the same `deployment` in their agent config.
     */
    deployment: DeploymentName,
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
        /**
         * Incremental backups between the full ones (none unless set), such as
         * `cron(15 9,15,21 * * ? *)`: each holds the pages changed since the cluster's previous
         * backup on the same host, and a restore applies the chain, then replays less binlog.
         * The agent's backup.incremental.maxChain bounds a chain; past it an incremental is taken
         * as a full backup.
         */
        incremental: cron.optional(),
        /** Binlog shipping interval; the RPO is about this long. */
        binlogIntervalMinutes: z.number().int().min(1).max(60).default(1),
        drill: cron.default("cron(0 6 ? * SUN *)"),
        /**
         * PITR-aware retention, per cluster: its own schedule, so a slow or failing retention never
         * fails a good backup (an alarm says when it fails).
         */
        retention: cron.default("cron(45 4 * * ? *)"),
        /** Where a drill restores on the chosen host: an empty directory with room for a full restore. */
        drillDatadir: z
          .string()
          .regex(/^\/[A-Za-z0-9._/-]{1,200}$/, "an absolute path of letters, digits, '.', '_', '-' and '/'")
          .default("/var/tmp/rewind/drill"),
        timeZone: z.string().default("UTC"),
        /**
         * Days between rotations of each cluster's accounts secret (Secrets Manager's schedule;
         * the rotation Lambda changes the passwords on the hosts through the agent).
         */
        rotationDays: z.number().int().min(1).max(1000).default(30),
        /**
         * Minutes after its time within which each cluster's full backup, drill and retention may
         * start (EventBridge Scheduler's FlexibleTimeWindow, mode FLEXIBLE; 1–1440): a fleet's
         * backups due at 03:15 spread over the window instead of all starting at once. 0 starts
         * each exactly on time. The binlog watchdog always runs on the minute.
         */
        spreadMinutes: z.number().int().min(0).max(1440).default(15),
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
        /**
         * Days each version is locked; by default what the PITR window needs: retention.pitrDays
         * plus the interval between full backups plus a day (lockDaysNeeded).
         */
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
    const needed = lockDaysNeeded(config.retention.pitrDays, config.schedules.full);
    if (lock !== undefined && lock < needed) {
      ctx.addIssue({
        code: "custom",
        path: ["bucket", "objectLockDays"],
        message: `Object Lock (${lock} days) must cover what the PITR window needs: ${needed} days (retention.pitrDays = ${config.retention.pitrDays}, plus ${scheduleIntervalDays(config.schedules.full)} between full backups, plus a day), since the window starts from the full backup before it; raise objectLockDays or lower pitrDays`,
      });
    }
  });

/**
 * The longest gap, in whole days (rounded up, at least 1), between two runs of an EventBridge
 * Scheduler expression: `rate(N unit)`, or `cron(min hour day-of-month month day-of-week year)`
 * where a day-of-month list counts as a month, a day-of-week list as its widest gap in a week,
 * and anything else as daily or more often.
 */
export function scheduleIntervalDays(expression: string): number {
  const rate = /^rate\((\d+) (minutes?|hours?|days?)\)$/.exec(expression);
  if (rate) {
    const minutes =
      Number(rate[1]) * (rate[2]!.startsWith("day") ? 1440 : rate[2]!.startsWith("hour") ? 60 : 1);
    return Math.max(1, Math.ceil(minutes / 1440));
  }
  const fields = /^cron\((.*)\)$/.exec(expression)?.[1]?.trim().split(/\s+/);
  if (fields?.length !== 6) return 31;
  const [, , dayOfMonth, month, dayOfWeek] = fields as [string, string, string, string, string];
  if (month !== "*") return 366;
  if (dayOfMonth !== "?" && dayOfMonth !== "*") return 31;
  if (dayOfWeek === "?" || dayOfWeek === "*") return 1;
  const names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
  const day = (text: string) => {
    const index = names.indexOf(text.toUpperCase());
    return index >= 0 ? index : Number(text) - 1;
  };
  const days = new Set<number>();
  for (const part of dayOfWeek.split(",")) {
    const [from, to] = part.split("-");
    const start = day(from!);
    const end = to === undefined ? start : day(to);
    if (!Number.isInteger(start) || !Number.isInteger(end) || /[#L/]/.test(part)) return 7;
    for (let d = start; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === end) break;
    }
  }
  const sorted = [...days].sort((a, b) => a - b);
  return Math.max(...sorted.map((d, i) => ((sorted[(i + 1) % sorted.length]! - d + 6) % 7) + 1));
}

/**
 * How long each version must stay locked: the window (pitrDays) starts from the newest full
 * backup before it, which can be a full-backup interval older, and a day of slack.
 */
export function lockDaysNeeded(pitrDays: number, fullSchedule: string): number {
  return pitrDays + scheduleIntervalDays(fullSchedule) + 1;
}

export type RewindConfig = z.infer<typeof RewindConfigSchema>;

/** The Object Lock every object version gets, or undefined when it is off. */
export function objectLock(
  config: RewindConfig,
): { readonly mode: "governance" | "compliance"; readonly days: number } | undefined {
  const { objectLockMode: mode, objectLockDays } = config.bucket;
  if (mode === "off") return undefined;
  return { mode, days: objectLockDays ?? lockDaysNeeded(config.retention.pitrDays, config.schedules.full) };
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
