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
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseRewindConfig } from "../infra/config.js";
import { synthFleet } from "../infra/fleet-report.js";
import type {
  ExecutionResult,
  ScheduledCommandResult,
  ScheduledInvocationResult,
} from "../sandbox/control-plane.js";
import { WriteWorkload } from "../sandbox/hosts/workload.js";
import { CLUSTER, Sandbox, sandboxRewindConfig } from "../sandbox/sandbox.js";
import { measureHistory } from "../test/unit/history-bucket.js";
import {
  add,
  type Counts,
  clusterMetricHours,
  deploymentBill,
  isClusterAlarm,
  monthBill,
  PRICE,
  printBill,
  printPhases,
  scale,
} from "./pricing.js";

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
printPhases(
  {
    backup: phases.backup!,
    retention: phases.retention!,
    "ship round": phases.shippingRound!,
    drill: phases.drill!,
    plan: phases.plan!,
  },
  { "ship round": 1 },
);

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
const metricHours = clusterMetricHours(roundsPerDay);
const logsGb = (agentOutputBytes / rounds) * roundsPerDay * 30 * 1e-9;
const { lines, total, deploymentAlarms } = monthBill(monthly, template, CLUSTER, { metricHours, logsGb });
console.log("\na month (30 days: 30 backups and plans, 4.3 drills, shipping every interval):");
printBill(lines);

// Storage, for a database of --db-gb: the retained full backups at the measured compression, and
// the binlogs of the PITR window (compressed as the backup was).
const fullGb = dbGb * backupRatio * defaults.retention.fullBackups;
const binlogGb = binlogGbPerDay * backupRatio * defaults.retention.pitrDays;
console.log(
  `\nstorage for a ${dbGb} GB database writing ${binlogGbPerDay} GB of binlogs a day (compressed ${(backupRatio * 100).toFixed(0)}% as measured, ${defaults.retention.fullBackups} full backups, ${defaults.retention.pitrDays}-day window, the default retention): ${(fullGb + binlogGb).toFixed(0)} GB, $${((fullGb + binlogGb) * PRICE.s3StandardGbMonth).toFixed(2)} per month in S3 Standard`,
);
// What the deployment pays once, shared by its clusters: measured on this template, and on a
// synth of 1,000 clusters to show it does not grow with the fleet.
const shared = deploymentBill(template, isClusterAlarm);
if (shared.alarms !== deploymentAlarms) throw new Error("the deployment's alarms were counted two ways");
const fleetDir = path.join(os.tmpdir(), `rewind-bench-cost-fleet-${process.pid}`);
let fleetShared: ReturnType<typeof deploymentBill>;
try {
  const fleet = synthFleet(1000, fleetDir);
  fleetShared = deploymentBill(JSON.parse(fleet.parent.json), isClusterAlarm);
  const perNested = fleet.nested.map((t) => deploymentBill(JSON.parse(t.json), isClusterAlarm));
  if (perNested.some((bill) => bill.usd > 0))
    throw new Error("a clusters' nested stack holds a key, a dashboard or a deployment alarm");
} finally {
  rmSync(fleetDir, { recursive: true, force: true });
}
console.log(
  `\nper deployment, shared by its clusters: ${shared.keys} KMS keys, ${shared.dashboards} dashboard and ${shared.alarms} alarms, $${shared.usd.toFixed(2)} a month (with 1,000 clusters: ${fleetShared.keys} keys, ${fleetShared.dashboards} dashboard, ${fleetShared.alarms} alarms, $${fleetShared.usd.toFixed(2)})`,
);
for (const clusters of [1, 100, 1000]) {
  console.log(
    `per cluster-month at ${clusters.toLocaleString()} cluster${clusters === 1 ? "" : "s"}: $${(total + fleetShared.usd / clusters).toFixed(2)} ($${total.toFixed(2)} of its own + $${(fleetShared.usd / clusters).toFixed(3)} of the deployment's)`,
  );
}
console.log(`cost per cluster-month: $${total.toFixed(2)} (excluding storage)`);
