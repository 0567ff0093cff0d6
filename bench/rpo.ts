/**
 * `npm run bench:rpo`: how far behind S3 is under a steady write load, with binlog-stream and with
 * the per-minute `binlog-push --flush` it replaces, measured in the same run on the same server.
 *
 * For each method: a MariaDB primary takes a steady single-writer workload for `--seconds`; every
 * 250 ms the newest committed transaction is compared with the newest one in S3 (a restore's
 * view: chunk and file manifests), giving the shipping lag's p50/p99/max. S3 requests are counted
 * by the S3 stand-in under that load and over `--idle-seconds` with no writes, and scaled to an
 * hour. The agent's CPU (utime + stime over wall time) and peak RSS are read from /proc while it
 * ships. The last line is `rpo p99: N.N s, max: N.N s` for binlog-stream.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { s3Client } from "../host-agent/clients.js";
import { bundleAgent } from "../infra/bundle-agent.js";
import { S3Server } from "../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent } from "../sandbox/hosts/agent.js";
import { MariaDbServer } from "../sandbox/hosts/mariadb-server.js";
import { ShippingProbe } from "../sandbox/hosts/shipping-probe.js";
import { WriteWorkload } from "../sandbox/hosts/workload.js";
import { scratchDir } from "../test/support.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "90" },
    // At least a minute, so that the per-minute push runs in it.
    "idle-seconds": { type: "string", default: "60" },
    "pause-ms": { type: "string", default: "5" },
  },
});
const seconds = Number(values.seconds);
const idleSeconds = Number(values["idle-seconds"]);
const pauseMs = Number(values["pause-ms"]);
const BUCKET = "rewind-bench";
process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";
const location = { cluster: "orders" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TICKS = 100; // USER_HZ on Linux

/**
 * CPU seconds and peak RSS of the agent processes, sampled from /proc every 100 ms (a short-lived
 * process's last 100 ms may be missed).
 */
class ProcessMeter {
  private cpuSeconds = 0;
  peakRssMiB = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly pids = new Map<number, number>();

  constructor() {
    this.timer = setInterval(() => this.sample(), 100);
  }

  watch(child: ChildProcess): void {
    if (child.pid) this.pids.set(child.pid, 0);
  }

  private sample(): void {
    for (const [pid, seen] of this.pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(fields[11]) + Number(fields[12]);
        this.cpuSeconds += (ticks - seen) / TICKS;
        this.pids.set(pid, ticks);
        const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        if (rss) this.peakRssMiB = Math.max(this.peakRssMiB, Number(rss[1]) / 1024);
      } catch {
        this.pids.delete(pid);
      }
    }
  }

  stop(): number {
    this.sample();
    clearInterval(this.timer);
    return this.cpuSeconds;
  }
}

interface MethodReport {
  readonly method: string;
  readonly lag: { samples: number; p50: number; p99: number; max: number };
  readonly requestsPerHourUnderLoad: number;
  readonly requestsPerHourIdle: number;
  readonly cpuPercent: number;
  readonly peakRssMiB: number;
  readonly transactionsPerSecond: number;
}

const scratch = scratchDir("bench-rpo");
const s3 = await S3Server.start({ storageDir: path.join(scratch.dir, "s3"), buckets: [BUCKET] });
const bundle = await bundleAgent(path.join(scratch.dir, "rewind-agent.mjs"));
const totalRequests = async (reset = false) =>
  Object.values(await s3.requestCounts({ reset })).reduce((sum, count) => sum + count, 0);
const reports: MethodReport[] = [];

/**
 * One method on a fresh server: `ship` starts shipping (returning a stop function) and registers
 * the agent processes it runs with the meter.
 */
async function measure(
  method: string,
  ship: (configFile: string, meter: ProcessMeter) => Promise<() => Promise<void>>,
): Promise<void> {
  const serverId = reports.length + 901;
  const primary = await MariaDbServer.start({ baseDir: path.join(scratch.dir, `db-${serverId}`), serverId });
  const { configFile } = await setUpLocalAgent({
    bundle,
    dir: path.join(scratch.dir, `agent-${serverId}`),
    server: primary,
    s3Endpoint: s3.endpoint,
    bucket: BUCKET,
    cluster: location.cluster,
    host: `db-${serverId}`,
  });
  const meter = new ProcessMeter();
  const stopShipping = await ship(configFile, meter);
  await sleep(2000);
  // A fresh server: the workload's first row is id 1.
  const firstId = 1;
  await totalRequests(true);
  const started = Date.now();
  const workload = await WriteWorkload.start(primary, { pauseMs });
  // The probe's own requests are counted apart and left out of the agent's.
  const probeClient = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  let probeRequests = 0;
  probeClient.middlewareStack.add(
    (next) => (args) => {
      probeRequests++;
      return next(args);
    },
    { step: "initialize" },
  );
  const probe = new ShippingProbe(
    probeClient,
    BUCKET,
    location,
    `${serverId}-db-${serverId}`,
    primary,
    workload,
    firstId,
  );
  while (Date.now() - started < seconds * 1000) {
    await probe.sample();
    await sleep(250);
  }
  const rows = await workload.stop();
  const loadSeconds = (Date.now() - started) / 1000;
  const underLoad = (await totalRequests(true)) - probeRequests;
  const cpuSeconds = meter.stop();
  // Idle: what shipping costs when nothing is written.
  await sleep(8000);
  await totalRequests(true);
  await sleep(idleSeconds * 1000);
  const idle = await totalRequests(true);
  await stopShipping();
  await primary.destroy();
  const report: MethodReport = {
    method,
    lag: probe.summary(),
    requestsPerHourUnderLoad: Math.round((underLoad / loadSeconds) * 3600),
    requestsPerHourIdle: Math.round((idle / idleSeconds) * 3600),
    cpuPercent: (cpuSeconds / loadSeconds) * 100,
    peakRssMiB: meter.peakRssMiB,
    transactionsPerSecond: rows / loadSeconds,
  };
  reports.push(report);
  console.log(
    `${method}: lag p50 ${report.lag.p50.toFixed(1)} s, p99 ${report.lag.p99.toFixed(1)} s, max ${report.lag.max.toFixed(1)} s over ${report.lag.samples} samples at ${report.transactionsPerSecond.toFixed(0)} tx/s`,
  );
}

const environment = {
  AWS_ACCESS_KEY_ID: "sandbox",
  AWS_SECRET_ACCESS_KEY: "sandbox",
  AWS_REGION: "us-east-1",
};
try {
  console.log(
    `bench:rpo: ${seconds} s of writes (one transaction every ${pauseMs} ms plus commit) and ${idleSeconds} s idle per method, ${os.cpus().length} CPUs`,
  );
  await measure("binlog-stream", async (configFile, meter) => {
    const child = spawn(process.execPath, [bundle, "binlog-stream", "--config", configFile], {
      stdio: ["ignore", "ignore", "ignore"],
      env: { ...process.env, ...environment },
    });
    meter.watch(child);
    return async () => {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    };
  });
  // The baseline: a schedule runs `binlog-push --flush` every minute (each run its own process).
  await measure("binlog-push --flush every minute", async (configFile, meter) => {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const started = Date.now();
        const run = startAgent(bundle, ["binlog-push", "--flush", "--config", configFile], environment);
        meter.watch(run.child);
        await run.done;
        for (let waited = Date.now() - started; waited < 60_000 && !stopped; waited = Date.now() - started)
          await sleep(200);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  });
} finally {
  await s3.stop();
  scratch.remove();
}

const [stream, push] = reports as [MethodReport, MethodReport];
const row = (label: string, a: string, b: string) =>
  console.log(`${label.padEnd(34)}${a.padStart(16)}${b.padStart(34)}`);
console.log("");
row("", stream.method, push.method);
row("shipping lag p50 (s)", stream.lag.p50.toFixed(1), push.lag.p50.toFixed(1));
row("shipping lag p99 (s)", stream.lag.p99.toFixed(1), push.lag.p99.toFixed(1));
row("shipping lag max (s)", stream.lag.max.toFixed(1), push.lag.max.toFixed(1));
row(
  "S3 requests per hour, under load",
  String(stream.requestsPerHourUnderLoad),
  String(push.requestsPerHourUnderLoad),
);
row("S3 requests per hour, idle", String(stream.requestsPerHourIdle), String(push.requestsPerHourIdle));
row("agent CPU (% of one core)", stream.cpuPercent.toFixed(1), push.cpuPercent.toFixed(1));
row("agent peak RSS (MiB)", stream.peakRssMiB.toFixed(0), push.peakRssMiB.toFixed(0));
console.log(
  `ratios (stream / per-minute push): lag p99 ${(stream.lag.p99 / Math.max(push.lag.p99, 0.001)).toFixed(3)}, requests under load ${(stream.requestsPerHourUnderLoad / Math.max(push.requestsPerHourUnderLoad, 1)).toFixed(2)}, idle ${(stream.requestsPerHourIdle / Math.max(push.requestsPerHourIdle, 1)).toFixed(2)}`,
);
console.log(`rpo p99: ${stream.lag.p99.toFixed(1)} s, max: ${stream.lag.max.toFixed(1)} s`);
