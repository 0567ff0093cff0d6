/**
 * `npm run bench:fleet`: a fleet in one deployment (issue 20).
 *
 * 1. `cdk synth` of 10, 100 and 1,000 clusters, in-process and offline: the time, and the size of
 *    the parent and the largest nested stack against CloudFormation's quotas.
 * 2. The sandbox with 20 one-host clusters: one cluster's full backup alone (the baseline, in this
 *    run), then every cluster's full-backup schedule fired at the same moment with SSM's
 *    SendCommand throttled (4 a second, burst 4): how long until all ended, how often SSM refused
 *    a SendCommand, and how many executions failed (on throttling, or otherwise).
 */
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fleetClusterNames, quotaProblems, synthFleet } from "../infra/fleet-report.js";
import type { ExecutionResult } from "../sandbox/control-plane.js";
import { FleetSandbox } from "../sandbox/fleet.js";

const { values } = parseArgs({
  options: {
    clusters: { type: "string", default: "20" },
    "per-second": { type: "string", default: "4" },
  },
});
const stampedeClusters = Number(values.clusters);
const perSecond = Number(values["per-second"]);
const root = path.join(os.tmpdir(), `rewind-bench-fleet-${process.pid}`);

console.log("bench:fleet — synth at 10, 100 and 1,000 clusters; a stampede in the sandbox");
let largest = 0;
let synthSeconds = 0;
for (const count of [10, 100, 1000]) {
  const fleet = synthFleet(count, path.join(root, `synth-${count}`));
  const nested = [...fleet.nested].sort((a, b) => b.resources - a.resources)[0]!;
  const problems = quotaProblems(fleet);
  console.log(
    `  ${String(count).padStart(5)} clusters: synth ${fleet.seconds.toFixed(1)} s; parent ${fleet.parent.resources} resources, ${Math.round(fleet.parent.bytes / 1024)} KiB; ${fleet.nested.length} nested stacks, the largest ${nested.resources} resources, ${Math.round(nested.bytes / 1024)} KiB; ${problems.length === 0 ? "every template under CloudFormation's quotas" : problems.join("; ")}`,
  );
  if (problems.length > 0) process.exitCode = 1;
  if (count === 1000) {
    largest = Math.max(fleet.parent.resources, ...fleet.nested.map((t) => t.resources));
    synthSeconds = fleet.seconds;
  }
}

const clusters = fleetClusterNames(stampedeClusters);
console.log(`\nsandbox: ${stampedeClusters} clusters, one MariaDB host each`);
const sandbox = await FleetSandbox.up({
  root: path.join(root, "sandbox"),
  deployments: [{ deployment: "rewind", clusters }],
});
let stampedeSeconds = 0;
let throttledFailures = 0;
try {
  const { controlPlane } = sandbox.deployment("rewind");
  const aloneStarted = performance.now();
  const alone = (await controlPlane.fireSchedule(`rewind-full-${clusters[0]}`)) as ExecutionResult;
  const aloneSeconds = (performance.now() - aloneStarted) / 1000;
  if (alone.status !== "SUCCEEDED")
    throw new Error(`the baseline backup failed: ${alone.error} ${alone.cause}`);
  console.log(`  one full backup alone (baseline): ${aloneSeconds.toFixed(1)} s`);
  const run = await sandbox.stampede("rewind", { perSecond, burst: perSecond });
  stampedeSeconds = run.seconds;
  const failed = run.results.filter(({ result }) => result.status !== "SUCCEEDED");
  throttledFailures = failed.filter(({ result }) =>
    /Throttl/i.test(`${result.error} ${result.cause}`),
  ).length;
  console.log(
    `  all ${stampedeClusters} due at once, SendCommand at ${perSecond}/s: ${run.seconds.toFixed(1)} s, ${run.throttled} SendCommand refused for its rate and retried, ${run.results.length - failed.length} succeeded, ${failed.length} failed`,
  );
  for (const { cluster, result } of failed) console.log(`    ${cluster}: ${result.error}: ${result.cause}`);
  if (failed.length > 0 || run.throttled === 0) process.exitCode = 1;
  console.log(
    `  stampede of ${stampedeClusters} / one backup alone: ${(run.seconds / aloneSeconds).toFixed(2)}`,
  );
} finally {
  await sandbox.down();
}
console.log(
  `fleet: 1000 clusters synthesized in ${synthSeconds.toFixed(1)} s, largest stack ${largest} resources, stampede of ${stampedeClusters} in ${stampedeSeconds.toFixed(1)} s, ${throttledFailures} throttled failures`,
);
