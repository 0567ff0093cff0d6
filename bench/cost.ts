/**
 * `npm run bench:cost`: what one cluster costs a month in AWS requests, excluding storage.
 *
 * A compressed day of the sandbox's cluster (3 hosts), every request counted by the stand-ins:
 * the scheduled full backup (with verify), scheduled retention, binlog-stream on the primary under a
 * steady workload with the watchdog's rounds at the configured interval, one restore drill and
 * one restore plan. Shipping is measured over `--rounds` watchdog rounds (after one that ships the
 * dataset's load): the streamer's S3 and KMS requests scaled by wall time, the watchdog's per round; the rest happens as often as its schedule says. Work per
 * run must not grow with history: a push's and a plan's S3 requests are also measured against
 * 1 day and 30 days of per-minute history (3 sources, index and manifests) in an in-memory bucket.
 * Prices: published us-east-1 list prices, without free tiers.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseRewindConfig } from "../infra/config.js";
import type {
  ExecutionResult,
  ScheduledCommandResult,
  ScheduledInvocationResult,
} from "../infra/local/control-plane.js";
import { CLUSTER, Sandbox, sandboxRewindConfig } from "../infra/local/sandbox.js";
import { WriteWorkload } from "../infra/local/workload.js";
import { measureHistory } from "../test/unit/history-bucket.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "10" },
    "db-gb": { type: "string", default: "100" },
    "binlog-gb-per-day": { type: "string", default: "2" },
  },
});
const rounds = Number(values.rounds);
const dbGb = Number(values["db-gb"]);
const binlogGbPerDay = Number(values["binlog-gb-per-day"]);

/** us-east-1 list prices (USD), November 2026. */
const PRICE = {
  s3PutListPer1k: 0.005, // PUT, COPY, POST, LIST
  s3GetPer1k: 0.0004, // GET, HEAD and the rest
  s3StandardGbMonth: 0.023,
  kmsPer10k: 0.03,
  secretMonth: 0.4,
  secretsPer10k: 0.05,
  schedulerPerMillion: 1.0,
  sfnPer1kTransitions: 0.025,
  lambdaPerMillion: 0.2,
  lambdaArmGbSecond: 0.0000133334,
  cwMetricMonth: 0.3,
  cwAlarmMonth: 0.1,
  cwLogsIngestGb: 0.5,
};
const S3_FREE = new Set(["DeleteObject", "DeleteObjects", "DeleteObjects (keys)", "AbortMultipartUpload"]);
const S3_CLASS_A = new Set([
  "PutObject",
  "CopyObject",
  "CreateMultipartUpload",
  "UploadPart",
  "CompleteMultipartUpload",
  "ListObjectsV2",
  "ListObjectVersions",
  "ListMultipartUploads",
  "ListParts",
  "PutObjectRetention",
]);

type Counts = Record<string, number>;
const scale = (counts: Counts, factor: number): Counts =>
  Object.fromEntries(Object.entries(counts).map(([key, n]) => [key, n * factor]));
const add = (...all: Counts[]): Counts => {
  const sum: Counts = {};
  for (const counts of all) for (const [key, n] of Object.entries(counts)) sum[key] = (sum[key] ?? 0) + n;
  return sum;
};
const sum = (counts: Counts, test: (key: string) => boolean) =>
  Object.entries(counts)
    .filter(([key]) => test(key))
    .reduce((total, [, n]) => total + n, 0);

const root = path.join(os.tmpdir(), `rewind-bench-cost-${process.pid}`);
const config = sandboxRewindConfig(root);
// Storage is estimated for the default retention, not the sandbox's short one.
const defaults = parseRewindConfig({ clusters: [{ name: CLUSTER, engine: "mariadb" }] }, "the defaults");
const roundsPerDay = 1440 / config.schedules.binlogIntervalMinutes;
console.log(
  `bench:cost — one cluster (3 hosts), ${roundsPerDay} shipping rounds a day, measured over ${rounds}`,
);

const sandbox = await Sandbox.up({ root, datasetMb: 40 });
const template = JSON.parse(readFileSync(sandbox.state.controlPlane, "utf8")).template as {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
};
const phases: Record<string, Counts> = {};
let agentOutputBytes = 0;
let backupRatio = 1;
const workload = await WriteWorkload.start(sandbox.primary, { pauseMs: 20 });
try {
  await sandbox.requestCounts({ reset: true });
  const backup = (await sandbox.controlPlane.fireSchedule(`rewind-full-${CLUSTER}`)) as ExecutionResult;
  if (backup.status !== "SUCCEEDED") throw new Error(`the backup failed: ${backup.error} ${backup.cause}`);
  const made = backup.output?.backup as { rawBytes: number; storedBytes: number };
  backupRatio = made.storedBytes / made.rawBytes;
  phases.backup = await sandbox.requestCounts({ reset: true });
  // Retention: its own daily schedule, off the backup's path.
  const expire = (await sandbox.controlPlane.fireSchedule(
    `rewind-expire-${CLUSTER}`,
  )) as ScheduledInvocationResult;
  if (!expire.ok) throw new Error(`retention failed: ${expire.error}`);
  phases.retention = await sandbox.requestCounts({ reset: true });
  // One round ships what the dataset load wrote and seeds each host's state: not a steady minute.
  await sandbox.controlPlane.fireSchedule(`rewind-binlogs-${CLUSTER}`);
  await sandbox.requestCounts({ reset: true });
  const windowStarted = Date.now();

  for (let round = 0; round < rounds; round++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const shipped = (await sandbox.controlPlane.fireSchedule(
      `rewind-binlogs-${CLUSTER}`,
    )) as ScheduledCommandResult;
    for (const host of shipped.hosts) {
      if (host.status !== "Success")
        throw new Error(`binlog-push failed on ${host.instanceId}: ${host.stderr}`);
      agentOutputBytes += JSON.stringify(host.result).length + host.stderr.length;
    }
  }
  // binlog-stream ships all the time, so its S3 and KMS requests are scaled by wall time to one
  // interval; the watchdog's (Scheduler, SSM) are per round.
  const intervalSeconds = config.schedules.binlogIntervalMinutes * 60;
  const windowSeconds = (Date.now() - windowStarted) / 1000;
  phases.shippingRound = Object.fromEntries(
    Object.entries(await sandbox.requestCounts({ reset: true })).map(([key, n]) => [
      key,
      /^(S3|KMS) /.test(key) ? (n * intervalSeconds) / windowSeconds : n / rounds,
    ]),
  );

  const drill = (await sandbox.controlPlane.fireSchedule(`rewind-drill-${CLUSTER}`)) as ExecutionResult;
  if (drill.status !== "SUCCEEDED") throw new Error(`the drill failed: ${drill.error} ${drill.cause}`);
  phases.drill = await sandbox.requestCounts({ reset: true });

  const plan = await sandbox.controlPlane.startExecution("Rewind-Restore", {
    cluster: CLUSTER,
    targetInstanceId: sandbox.host("standby").instanceId,
    latest: true,
    datadir: sandbox.host("standby").datadir,
    dryRun: true,
  });
  if (plan.status !== "SUCCEEDED") throw new Error(`the plan failed: ${plan.error} ${plan.cause}`);
  phases.plan = await sandbox.requestCounts({ reset: true });
} finally {
  await workload.stop();
  await sandbox.down();
}

console.log("\nrequests per run, by API (measured):");
const apis = [...new Set(Object.values(phases).flatMap((counts) => Object.keys(counts)))].sort();
const header = ["API", "backup", "retention", "ship round", "drill", "plan"];
console.log(
  `  ${header[0]!.padEnd(42)}${header
    .slice(1)
    .map((h) => h.padStart(11))
    .join("")}`,
);
for (const api of apis.filter((api) => !api.startsWith("Lambda ms"))) {
  const cells = [phases.backup, phases.retention, phases.shippingRound, phases.drill, phases.plan].map(
    (counts) => (counts![api] ?? 0).toFixed(counts === phases.shippingRound ? 1 : 0).padStart(11),
  );
  console.log(`  ${api.padEnd(42)}${cells.join("")}`);
}

// Work against history: the store's S3 requests for a push and a plan, 1 day vs 30 days.
const oneDay = await measureHistory(1);
const month = await measureHistory(30);
oneDay.bucket.s3.restore();
month.bucket.s3.restore();
console.log("\nS3 requests against per-minute history (3 sources, in-memory bucket):");
console.log(`  a push without a hint: ${oneDay.push.total} with 1 day, ${month.push.total} with 30 days`);
console.log(`  a plan:               ${oneDay.plan.total} with 1 day, ${month.plan.total} with 30 days`);
// A plan reads each of the 3 sources' index from the chunk holding the backup's point: one more
// chunk each when that is not the newest (as after 30 days here), never more.
const flat = month.push.total <= oneDay.push.total && month.plan.total <= oneDay.plan.total + 3;
console.log(
  `  ${flat ? "flat: the cost below does not grow with history" : "NOT FLAT: history raises the cost"}`,
);

// A month: backups, retention and plans daily, drills weekly, shipping at the interval.
const monthly = add(
  scale(phases.backup!, 30),
  scale(phases.retention!, 30),
  scale(phases.shippingRound!, roundsPerDay * 30),
  scale(phases.drill!, 30 / 7),
  scale(phases.plan!, 30),
);
const resources = Object.values(template.Resources);
const secrets = resources.filter((r) => r.Type === "AWS::SecretsManager::Secret").length;
const alarms = resources.filter((r) => r.Type === "AWS::CloudWatch::Alarm");
// Alarms on a cluster's metrics come with each cluster; the others (failed executions, schedule
// errors, dead letters) once per deployment.
const clusterAlarms = alarms.filter((r) =>
  JSON.stringify(r.Properties?.Dimensions ?? []).includes(`"${CLUSTER}"`),
).length;
const deploymentAlarms = alarms.length - clusterAlarms;
// Custom metrics are prorated by the hour they are published in: per cluster, how many hours a
// month each one is sent (the binlog lag every interval, backups and plans daily, drills weekly).
const metricHours: [string, number][] = [
  ["RestorableLagSeconds", Math.min(720, roundsPerDay * 30)],
  ["BackupSucceeded", 30],
  ["BackupBytes", 30],
  ["RetentionDeletedObjects", 30],
  ["RetentionRefused", 30],
  ["DrillSucceeded", 30 / 7],
  ["RestoreSucceeded", 30],
];
const metricMonths = metricHours.reduce((total, [, hours]) => total + hours / 720, 0);
const memoryGb =
  Number(resources.find((r) => r.Type === "AWS::Lambda::Function")?.Properties?.MemorySize ?? 128) / 1024;
const lambdaSeconds = sum(monthly, (key) => key.startsWith("Lambda ms")) / 1000;

const s3ClassA = sum(monthly, (key) => key.startsWith("S3 ") && S3_CLASS_A.has(key.slice(3)));
const s3Free = sum(monthly, (key) => key.startsWith("S3 ") && S3_FREE.has(key.slice(3)));
const s3Other = sum(monthly, (key) => key.startsWith("S3 ")) - s3ClassA - s3Free;
const logsGb = (agentOutputBytes / rounds) * roundsPerDay * 30 * 1e-9;
const lines: [string, string, number][] = [
  [
    "S3 PUT/POST/LIST",
    `${Math.round(s3ClassA).toLocaleString()} requests`,
    (s3ClassA / 1000) * PRICE.s3PutListPer1k,
  ],
  ["S3 GET/HEAD", `${Math.round(s3Other).toLocaleString()} requests`, (s3Other / 1000) * PRICE.s3GetPer1k],
  [
    "KMS",
    `${Math.round(sum(monthly, (k) => k.startsWith("KMS "))).toLocaleString()} requests`,
    (sum(monthly, (k) => k.startsWith("KMS ") && !k.includes("via s3")) / 10_000) * PRICE.kmsPer10k,
  ],
  [
    "Secrets Manager API",
    `${Math.round(sum(monthly, (k) => k.startsWith("SecretsManager "))).toLocaleString()} requests`,
    (sum(monthly, (k) => k.startsWith("SecretsManager ")) / 10_000) * PRICE.secretsPer10k,
  ],
  ["Secrets Manager secrets", `${secrets} secrets`, secrets * PRICE.secretMonth],
  [
    "Scheduler",
    `${Math.round(sum(monthly, (k) => k.startsWith("Scheduler "))).toLocaleString()} invocations`,
    (sum(monthly, (k) => k.startsWith("Scheduler ")) / 1e6) * PRICE.schedulerPerMillion,
  ],
  [
    "Step Functions",
    `${Math.round(sum(monthly, (k) => k === "StepFunctions StateTransition")).toLocaleString()} transitions`,
    (sum(monthly, (k) => k === "StepFunctions StateTransition") / 1000) * PRICE.sfnPer1kTransitions,
  ],
  [
    "Lambda",
    `${Math.round(sum(monthly, (k) => k.startsWith("Lambda Invoke"))).toLocaleString()} invocations, ${Math.round(lambdaSeconds)} s at ${memoryGb * 1024} MB`,
    (sum(monthly, (k) => k.startsWith("Lambda Invoke")) / 1e6) * PRICE.lambdaPerMillion +
      lambdaSeconds * memoryGb * PRICE.lambdaArmGbSecond,
  ],
  [
    "CloudWatch metrics",
    `${metricHours.length} custom metrics, ${metricMonths.toFixed(2)} metric-months`,
    metricMonths * PRICE.cwMetricMonth,
  ],
  ["CloudWatch alarms", `${clusterAlarms} alarms`, clusterAlarms * PRICE.cwAlarmMonth],
  ["CloudWatch Logs", `${(logsGb * 1000).toFixed(1)} MB of agent output`, logsGb * PRICE.cwLogsIngestGb],
];
console.log("\na month (30 days: 30 backups and plans, 4.3 drills, shipping every interval):");
for (const [what, volume, usd] of lines)
  console.log(`  ${what.padEnd(26)}${volume.padEnd(44)}$${usd.toFixed(2).padStart(6)}`);
const total = lines.reduce((sumUsd, [, , usd]) => sumUsd + usd, 0);

// Storage, for a database of --db-gb: the retained full backups at the measured compression, and
// the binlogs of the PITR window (compressed as the backup was).
const fullGb = dbGb * backupRatio * defaults.retention.fullBackups;
const binlogGb = binlogGbPerDay * backupRatio * defaults.retention.pitrDays;
console.log(
  `\nstorage for a ${dbGb} GB database writing ${binlogGbPerDay} GB of binlogs a day (compressed ${(backupRatio * 100).toFixed(0)}% as measured, ${defaults.retention.fullBackups} full backups, ${defaults.retention.pitrDays}-day window, the default retention): ${(fullGb + binlogGb).toFixed(0)} GB, $${((fullGb + binlogGb) * PRICE.s3StandardGbMonth).toFixed(2)} per month in S3 Standard`,
);
console.log(
  `(per deployment, shared by its clusters: the KMS key $1.00, the dashboard $3.00 and ${deploymentAlarms} alarms $${(deploymentAlarms * PRICE.cwAlarmMonth).toFixed(2)} a month)`,
);
console.log(`cost per cluster-month: $${total.toFixed(2)} (excluding storage)`);
