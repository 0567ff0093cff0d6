/**
 * `npm run bench:month`: a month of operation for two clusters, a busy one (constant writes) and
 * a quiet one (a heartbeat write every 10 s), without waiting a month.
 *
 * 1. Measured for real, in the sandbox (the synthesized stack, IAM enforced, the S3 stand-in
 *    versioned with the template's Object Lock and lifecycle): a full backup, retention, a
 *    watchdog round, a restore plan and a drill, each counted by API; then `--seconds` of
 *    binlog-stream on the primary under each cluster's workload, every request counted, and the
 *    bytes it stored. These counts, scaled to a month, are the requests per API and the bill.
 * 2. Generated, through the code paths that write it: 30 days of each cluster's history in a
 *    versioned bucket behind the S3 gate, with the clock advanced a day at a time (Object Lock
 *    and lifecycle run on it): a full backup a day (storeCompressed, its manifest), an hourly
 *    binlog file streamed as chunks (storeChunk, the measured hourly bytes) and shipped whole
 *    (storeCompressed, its manifest, addToBinlogIndex), retention daily (applyRetention, which
 *    deletes versions by id). Data bytes are generated at `--scale` of the measured volumes, and
 *    a closed file's chunks at most 12 an hour (each carrying the measured hour's bytes between
 *    them); the object counts printed are scaled back to the measured chunk rate. The file being
 *    written when a plan runs has the measured hour's full chunk count.
 * 3. PlanRestore for "latest" (the Lambda's planning, against that bucket) on day 1 and day 30:
 *    its S3 requests and time must not grow with the history.
 *
 * Prices: us-east-1 list prices (bench/pricing.ts). Last line:
 * `constant writes: $N.NN per cluster-month (excluding storage), plan requests day 30/day 1: N/N, storage multiplier: N.NN`
 * (the busy cluster's cost and plan requests, the larger multiplier of the two).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { RawAesKeyringNode, RawAesWrappingSuiteIdentifier } from "@aws-crypto/client-node";
import { ListObjectVersionsCommand } from "@aws-sdk/client-s3";
import { BINLOG_CHUNK_FORMAT_VERSION } from "../core/binlog/chunk.js";
import { BINLOG_MANIFEST_FORMAT_VERSION, type BinlogManifest } from "../core/binlog/manifest.js";
import {
  backupManifestKey,
  binlogChunkKey,
  binlogManifestKey,
  binlogObjectKey,
  segmentKey,
} from "../core/layout.js";
import { type BackupManifest, ENCRYPTION_SUITE, MANIFEST_FORMAT_VERSION } from "../core/manifest.js";
import { addToBinlogIndex } from "../core/store/binlog-index.js";
import { storeChunk } from "../host-agent/binlog/chunk-object.js";
import { storeCompressed } from "../host-agent/binlog/ship-file.js";
import { s3Client } from "../host-agent/clients.js";
import { cachedDataKeys } from "../host-agent/encryption.js";
import { putJson } from "../host-agent/s3/put-json.js";
import { objectLock, parseRewindConfig } from "../infra/config.js";
import { RestoreInput } from "../lambdas/lib/inputs.js";
import { planClusterRestore } from "../lambdas/lib/plan-restore.js";
import { applyRetention } from "../lambdas/lib/retention.js";
import { backupBucketRules } from "../sandbox/aws/s3-bucket-rules.js";
import { S3Server } from "../sandbox/aws/s3-server.js";
import type { ExecutionResult, ScheduledCommandResult } from "../sandbox/control-plane.js";
import { WriteWorkload } from "../sandbox/hosts/workload.js";
import { CLUSTER, Sandbox } from "../sandbox/sandbox.js";
import type { Template } from "../sandbox/state-machine-definitions.js";
import {
  add,
  type Counts,
  clusterMetricHours,
  monthBill,
  PRICE,
  printBill,
  printPhases,
  scale,
} from "./pricing.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    days: { type: "string", default: "30" },
    scale: { type: "string", default: "0.01" },
    "db-gb": { type: "string", default: "10" },
  },
});
// The generated month's bucket is the S3 stand-in without IAM: any signed request passes.
process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";
const seconds = Number(values.seconds);
const days = Number(values.days);
const dataScale = Number(values.scale);
const dbGb = Number(values["db-gb"]);
const MONTH_SECONDS = 30 * 86_400;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

const root = path.join(os.tmpdir(), `rewind-bench-month-${process.pid}`);
const defaults = parseRewindConfig({ clusters: [{ name: CLUSTER, engine: "mariadb" }] }, "the defaults");

interface Profile {
  readonly name: "busy" | "quiet";
  /** The workload's pause between writes. */
  readonly pauseMs: number;
}
const PROFILES: Profile[] = [
  { name: "busy", pauseMs: 20 },
  { name: "quiet", pauseMs: 10_000 },
];

interface Streaming {
  /** Requests per second by API while streaming. */
  readonly perSecond: Counts;
  readonly chunksPerHour: number;
  /** Stored bytes per hour of chunks (the whole files store as much again). */
  readonly chunkBytesPerHour: number;
  readonly transactionsPerHour: number;
}

console.log(
  `bench:month — ${days} days of a busy and a quiet cluster; ${seconds} s of real streaming each, history generated at scale ${dataScale}`,
);

// 1. Real runs in the sandbox.
const sandbox = await Sandbox.up({ root: path.join(root, "sandbox"), datasetMb: 20 });
const template = JSON.parse(readFileSync(sandbox.state.controlPlane, "utf8")).template as Template;
const phases: Record<string, Counts> = {};
const streaming = new Map<Profile["name"], Streaming>();
let backupRatio = 1;
let agentOutputBytes = 0;
try {
  const s3 = sandbox.aws.s3!;
  await sandbox.requestCounts({ reset: true });
  const backup = (await sandbox.controlPlane.fireSchedule(`rewind-full-${CLUSTER}`)) as ExecutionResult;
  if (backup.status !== "SUCCEEDED") throw new Error(`the backup failed: ${backup.error} ${backup.cause}`);
  const made = backup.output?.backup as { rawBytes: number; storedBytes: number };
  backupRatio = made.storedBytes / made.rawBytes;
  phases.backup = await sandbox.requestCounts({ reset: true });
  await sandbox.controlPlane.fireSchedule(`rewind-expire-${CLUSTER}`);
  phases.retention = await sandbox.requestCounts({ reset: true });
  const watchdog = (await sandbox.controlPlane.fireSchedule(
    `rewind-binlogs-${CLUSTER}`,
  )) as ScheduledCommandResult;
  for (const host of watchdog.hosts)
    agentOutputBytes += JSON.stringify(host.result).length + host.stderr.length;
  phases.watchdog = await sandbox.requestCounts({ reset: true });

  for (const profile of PROFILES) {
    const workload = await WriteWorkload.start(sandbox.primary, { pauseMs: profile.pauseMs });
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const chunksPrefix = `${CLUSTER}/binlogs/`;
    const before = await s3.storage(sandbox.state.bucket, chunksPrefix, ".chunk");
    const firstRow = (await WriteWorkload.rowsOf(sandbox.primary)).maxId;
    await sandbox.requestCounts({ reset: true });
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const counts = await sandbox.requestCounts({ reset: true });
    const elapsed = (Date.now() - started) / 1000;
    const after = await s3.storage(sandbox.state.bucket, chunksPrefix, ".chunk");
    const lastRow = (await WriteWorkload.rowsOf(sandbox.primary)).maxId;
    await workload.stop();
    // Only the streamer's requests: S3 and the KMS it uses; nothing else runs meanwhile.
    const perSecond = scale(counts, 1 / elapsed);
    const chunks = counts["S3 PutObject"] ?? 0;
    streaming.set(profile.name, {
      perSecond,
      chunksPerHour: (chunks / elapsed) * 3600,
      chunkBytesPerHour: (Math.max(0, after.keptBytes - before.keptBytes) / elapsed) * 3600,
      transactionsPerHour: ((lastRow - firstRow) / elapsed) * 3600,
    });
  }

  const plan = await sandbox.controlPlane.startExecution("Rewind-Restore", {
    cluster: CLUSTER,
    targetInstanceId: sandbox.host("standby").instanceId,
    latest: true,
    datadir: sandbox.host("standby").datadir,
    dryRun: true,
  });
  if (plan.status !== "SUCCEEDED") throw new Error(`the plan failed: ${plan.error} ${plan.cause}`);
  phases.plan = await sandbox.requestCounts({ reset: true });
  const drill = (await sandbox.controlPlane.fireSchedule(`rewind-drill-${CLUSTER}`)) as ExecutionResult;
  if (drill.status !== "SUCCEEDED") throw new Error(`the drill failed: ${drill.error} ${drill.cause}`);
  phases.drill = await sandbox.requestCounts({ reset: true });
} finally {
  await sandbox.down();
}

console.log("\nrequests per run, by API (measured in the sandbox; streaming per minute):");
printPhases({
  backup: phases.backup!,
  retention: phases.retention!,
  watchdog: phases.watchdog!,
  plan: phases.plan!,
  drill: phases.drill!,
  "busy/min": scale(streaming.get("busy")!.perSecond, 60),
  "quiet/min": scale(streaming.get("quiet")!.perSecond, 60),
});

// 2. The generated month, in a versioned bucket with the stack's lock and lifecycle.
const BUCKET = "rewind-month";
const lock = objectLock(defaults)!;
const s3 = await S3Server.start({
  storageDir: path.join(root, "s3"),
  buckets: [BUCKET],
  rules: { ...backupBucketRules(template, findBucket(template)), objectLock: lock },
  log: () => {},
});
const client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
const keyring = new RawAesKeyringNode({
  keyName: "bench",
  keyNamespace: "rewind-local",
  unencryptedMasterKey: randomBytes(32),
  wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
});
const materials = cachedDataKeys(keyring);
const MAX_GENERATED_CHUNKS = 12;

function findBucket(t: Template): string {
  return Object.entries(t.Resources).find(
    ([, resource]) =>
      resource.Type === "AWS::S3::Bucket" &&
      (resource.Properties as { ObjectLockEnabled?: boolean } | undefined)?.ObjectLockEnabled === true,
  )![0];
}

const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const iso = (ms: number) => new Date(ms).toISOString();
const fileName = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;
const encryption = (context: Record<string, string>) => ({
  suite: ENCRYPTION_SUITE as typeof ENCRYPTION_SUITE,
  frameLength: 1024 * 1024,
  keyId: "raw-aes:rewind-local/bench",
  context,
});

class History {
  readonly location: { cluster: string };
  readonly source = "1-db1";
  private file = 0;
  private seq = 0;
  constructor(
    readonly profile: Profile["name"],
    private readonly rates: Streaming,
  ) {
    this.location = { cluster: profile };
  }

  private get perHourBytes(): number {
    return Math.max(1024, Math.round(this.rates.chunkBytesPerHour * dataScale));
  }

  /**
   * The hour's file as binlog-stream leaves it: `chunks` chunk objects, then the whole file and
   * its index record. `whileOpen` runs between the two, as a plan made during the hour would.
   */
  async hour(startMs: number, chunks: number, whileOpen?: () => Promise<void>): Promise<void> {
    this.file++;
    const file = fileName(this.file);
    const context = { cluster: this.profile, source: this.source, file };
    const before = this.seq;
    const transactions = Math.max(1, Math.round(this.rates.transactionsPerHour));
    const perChunk = Math.max(64, Math.floor(this.perHourBytes / chunks));
    const pieces: Buffer[] = [];
    let offset = 0;
    for (let chunk = 0; chunk < chunks; chunk++) {
      const bytes = randomBytes(perChunk);
      const through = before + Math.round((transactions * (chunk + 1)) / chunks);
      await storeChunk({
        client,
        bucket: BUCKET,
        key: binlogChunkKey(this.location, this.source, file, offset, offset + bytes.length),
        materials,
        compressionLevel: 3,
        bytes,
        facts: {
          formatVersion: BINLOG_CHUNK_FORMAT_VERSION,
          cluster: this.profile,
          engine: "mariadb",
          source: this.source,
          file,
          chunk,
          previousFile: this.file > 1 ? fileName(this.file - 1) : null,
          serverVersion: "10.11.19-MariaDB",
          startOffset: offset,
          endOffset: offset + bytes.length,
          sha256: sha(bytes),
          fileGtidsBefore: before > 0 ? `0-1-${before}` : "",
          gtidsAdded: `0-1-${through}`,
          firstGtid: `0-1-${before + 1}`,
          lastGtid: `0-1-${through}`,
          chunkFirstGtid: `0-1-${before + 1}`,
          firstEventTime: iso(startMs),
          lastEventTime: iso(startMs + ((chunk + 1) * HOUR_MS) / chunks - 1000),
          lastCommitTime: null,
          transactions: through - before,
          chunkTransactions: 1,
          encryption: encryption(context),
          shippedAt: iso(startMs + ((chunk + 1) * HOUR_MS) / chunks),
          agentVersion: "bench",
        },
      });
      pieces.push(bytes);
      offset += bytes.length;
    }
    await whileOpen?.();
    this.seq = before + transactions;
    const whole = Buffer.concat(pieces);
    const { stored, storedSha256 } = await storeCompressed(
      Readable.from([whole]),
      {
        client,
        bucket: BUCKET,
        key: binlogObjectKey(this.location, this.source, file),
        keyring,
        encryptionContext: context,
        compressionLevel: 3,
        partSize: 8 * 1024 * 1024,
        concurrency: 2,
      },
      `shipping ${file}`,
    );
    const manifest: BinlogManifest = {
      formatVersion: BINLOG_MANIFEST_FORMAT_VERSION,
      cluster: this.profile,
      engine: "mariadb",
      source: this.source,
      file,
      previousFile: this.file > 1 ? fileName(this.file - 1) : null,
      serverVersion: "10.11.19-MariaDB",
      size: whole.length,
      sha256: sha(whole),
      firstEventTime: iso(startMs),
      lastEventTime: iso(startMs + HOUR_MS - 1000),
      gtidsBefore: before > 0 ? `0-1-${before}` : "",
      firstGtid: `0-1-${before + 1}`,
      lastGtid: `0-1-${this.seq}`,
      gtidsAdded: `0-1-${this.seq}`,
      lastCommitTime: null,
      transactions,
      stored,
      storedSha256,
      compression: { algorithm: "zstd", level: 3 },
      encryption: encryption(context),
      shippedAt: iso(startMs + HOUR_MS + 5000),
      agentVersion: "bench",
    };
    await putJson(client, BUCKET, binlogManifestKey(this.location, this.source, file), manifest);
    await addToBinlogIndex(client, BUCKET, this.location, this.source, [manifest]);
  }

  /** The day's full backup, at the start of the current file, as the agent stores one. */
  async backup(atMs: number): Promise<void> {
    const backupId = `${new Date(atMs).toISOString().replace(/[-:]/g, "").slice(0, 15)}Z-full-db1`;
    const bytes = Math.max(4096, Math.round(dbGb * 1e9 * backupRatio * dataScale));
    const { stored, storedSha256 } = await storeCompressed(
      Readable.from([randomBytes(bytes)]),
      {
        client,
        bucket: BUCKET,
        key: segmentKey(this.location, backupId, 0),
        keyring,
        encryptionContext: { cluster: this.profile, backupId },
        compressionLevel: 1,
        partSize: 8 * 1024 * 1024,
        concurrency: 2,
      },
      `backup ${backupId}`,
    );
    const manifest: BackupManifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      cluster: this.profile,
      backupId,
      type: "full",
      parentBackupId: null,
      host: "db1",
      engine: { name: "mariadb", version: "10.11.19-MariaDB" },
      tool: { name: "mariabackup", version: "10.11.19" },
      serverId: 1,
      serverUuid: null,
      binlogSource: this.source,
      startTime: iso(atMs),
      endTime: iso(atMs + 60_000),
      binlog: { file: fileName(this.file + 1), position: 4, gtidSet: this.seq > 0 ? `0-1-${this.seq}` : "" },
      lsn: { fromLsn: "0", toLsn: "1", lastLsn: "1" },
      rawBytes: bytes,
      storedBytes: stored.size,
      storedSha256,
      segments: [stored],
      compression: { algorithm: "zstd", level: 1 },
      encryption: encryption({ cluster: this.profile, backupId }),
      myCnf: "",
      agentVersion: "bench",
    };
    await putJson(client, BUCKET, backupManifestKey(this.location, backupId), manifest);
  }
}

/** PlanRestore for "latest", as the Lambda runs it: its S3 requests and time. */
async function planLatest(cluster: string, restoreId: string): Promise<{ requests: number; ms: number }> {
  await s3.requestCounts({ reset: true });
  const started = performance.now();
  await planClusterRestore(
    client,
    BUCKET,
    RestoreInput.parse({
      cluster,
      targetInstanceId: "i-0123456789abcdef0",
      latest: true,
      mode: "scratch",
      datadir: "/var/lib/rewind-bench",
      dryRun: true,
    }),
    restoreId,
  );
  const ms = performance.now() - started;
  const counts = await s3.requestCounts({ reset: true });
  return { requests: Object.values(counts).reduce((a, b) => a + b, 0), ms };
}

/** Keys and versions under a cluster's prefix, from ListObjectVersions (what S3 bills). */
async function versionsOf(
  cluster: string,
): Promise<{ versions: number; markers: number; chunkVersions: number }> {
  let versions = 0;
  let markers = 0;
  let chunkVersions = 0;
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  do {
    const page = await client.send(
      new ListObjectVersionsCommand({
        Bucket: BUCKET,
        Prefix: `${cluster}/`,
        KeyMarker: keyMarker,
        VersionIdMarker: versionIdMarker,
      }),
    );
    versions += page.Versions?.length ?? 0;
    markers += page.DeleteMarkers?.length ?? 0;
    chunkVersions += (page.Versions ?? []).filter((v) => v.Key!.endsWith(".chunk")).length;
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker);
  return { versions, markers, chunkVersions };
}

interface MonthResult {
  readonly plan: { day1: { requests: number; ms: number }; dayN: { requests: number; ms: number } };
  readonly storage: Awaited<ReturnType<S3Server["storage"]>>;
  /** Of it, the manifests, index chunks and other JSON: written at full size, not scaled. */
  readonly metadata: Awaited<ReturnType<S3Server["storage"]>>;
  readonly versions: Awaited<ReturnType<typeof versionsOf>>;
  readonly chunkFactor: number;
  readonly heldByLock: number;
}

const results = new Map<Profile["name"], MonthResult>();
try {
  const policy = {
    fullBackups: defaults.retention.fullBackups,
    pitrDays: defaults.retention.pitrDays,
    objectLockDays: lock.days,
  };
  const start = Date.parse((await s3.advanceClock(0)).now);
  const histories = PROFILES.map((profile) => new History(profile.name, streaming.get(profile.name)!));
  const plans = new Map<Profile["name"], { requests: number; ms: number }[]>();
  let heldByLock = 0;
  for (let day = 0; day < days; day++) {
    const dayStart = start + day * DAY_MS;
    for (const history of histories) {
      const rates = streaming.get(history.profile)!;
      const perHour = Math.max(1, Math.round(rates.chunksPerHour));
      const generated = Math.min(perHour, MAX_GENERATED_CHUNKS);
      const report = await applyRetention(
        client,
        BUCKET,
        history.profile,
        policy,
        new Date(dayStart + 2 * HOUR_MS),
      );
      heldByLock = report.heldByLock;
      for (let hour = 0; hour < 24; hour++) {
        if (hour === 3) await history.backup(dayStart + hour * HOUR_MS);
        const planned = hour === 23 && (day === 0 || day === days - 1);
        if (!planned) {
          await history.hour(dayStart + hour * HOUR_MS, generated);
          continue;
        }
        // "Latest" while the hour's file is being written: the measured hour's chunks (at most a
        // file's worth), planned before the file closes.
        await history.hour(dayStart + hour * HOUR_MS, Math.min(perHour, 1000), async () => {
          const measured = await planLatest(history.profile, `bench-${history.profile}-day${day + 1}`);
          plans.set(history.profile, [...(plans.get(history.profile) ?? []), measured]);
        });
      }
    }
    await s3.advanceClock(86_400);
    process.stderr.write(`day ${day + 1}/${days}\r`);
  }
  for (const history of histories) {
    const rates = streaming.get(history.profile)!;
    const perHour = Math.max(1, Math.round(rates.chunksPerHour));
    const [day1, dayN] = plans.get(history.profile)!;
    results.set(history.profile, {
      plan: { day1: day1!, dayN: dayN! },
      storage: await s3.storage(BUCKET, `${history.profile}/`),
      metadata: await s3.storage(BUCKET, `${history.profile}/`, ".json"),
      versions: await versionsOf(history.profile),
      chunkFactor: perHour / Math.min(perHour, MAX_GENERATED_CHUNKS),
      heldByLock,
    });
  }
} finally {
  await s3.stop();
  rmSync(root, { recursive: true, force: true });
}

// 3. Per cluster: requests, objects, storage, plans, cost.
const roundsPerDay = 1440;
let busyCost = 0;
let busyPlans = { day1: 0, dayN: 0 };
let worstMultiplier = 0;
for (const profile of PROFILES) {
  const rates = streaming.get(profile.name)!;
  const result = results.get(profile.name)!;
  const monthly = add(
    scale(phases.backup!, 30),
    scale(phases.retention!, 30),
    scale(phases.watchdog!, roundsPerDay * 30),
    scale(rates.perSecond, MONTH_SECONDS),
    scale(phases.drill!, 30 / 7),
    scale(phases.plan!, 30),
  );
  const logsGb = agentOutputBytes * roundsPerDay * 30 * 1e-9;
  const { lines, total } = monthBill(monthly, template, CLUSTER, {
    metricHours: clusterMetricHours(roundsPerDay),
    logsGb,
  });
  const { storage, metadata, versions } = result;
  // Data objects were generated at --scale, manifests and index chunks at their real size: at
  // full scale the data counts 1/scale times as much.
  const fullScale = (kind: "keptBytes" | "liveBytes") =>
    (storage[kind] - metadata[kind]) / dataScale + metadata[kind];
  const multiplier = fullScale("keptBytes") / Math.max(1, fullScale("liveBytes"));
  const generatedMultiplier = storage.keptBytes / Math.max(1, storage.liveBytes);
  const storageUsd = (fullScale("keptBytes") / 1e9) * PRICE.s3StandardGbMonth;
  const fullGranularity = Math.round(
    versions.versions - versions.chunkVersions + versions.chunkVersions * result.chunkFactor,
  );
  console.log(
    `\n${profile.name} cluster (a write every ${profile.pauseMs} ms): ${Math.round(rates.transactionsPerHour).toLocaleString()} transactions, ${Math.round(rates.chunksPerHour)} chunks and ${(rates.chunkBytesPerHour / 1e6).toFixed(2)} MB of chunks an hour (measured)`,
  );
  console.log("  requests per month, by API:");
  for (const [api, n] of Object.entries(monthly)
    .filter(([api]) => !api.startsWith("Lambda ms"))
    .sort())
    console.log(`    ${api.padEnd(40)}${Math.round(n).toLocaleString().padStart(14)}`);
  console.log(
    `  after ${days} days: ${storage.objects.toLocaleString()} objects, ${versions.versions.toLocaleString()} versions (${versions.chunkVersions.toLocaleString()} of them chunks; ${fullGranularity.toLocaleString()} at the measured chunk rate), ${versions.markers} delete markers, ${storage.noncurrentVersions} noncurrent versions, ${result.heldByLock} object(s) waiting for their lock`,
  );
  console.log(
    `  storage multiplier (every version and marker ÷ live bytes): ${multiplier.toFixed(2)} at full scale (${(fullScale("keptBytes") / 1e9).toFixed(2)} GB kept for a ${dbGb} GB database, ${(metadata.keptBytes / 1e6).toFixed(1)} MB of it manifests and index chunks, ${((metadata.keptBytes - metadata.liveBytes) / 1e6).toFixed(1)} MB noncurrent); ${generatedMultiplier.toFixed(2)} as generated at scale ${dataScale}`,
  );
  console.log(
    `  PlanRestore "latest": day 1 ${result.plan.day1.requests} requests in ${Math.round(result.plan.day1.ms)} ms, day ${days} ${result.plan.dayN.requests} requests in ${Math.round(result.plan.dayN.ms)} ms`,
  );
  console.log("  a month at list prices:");
  printBill(lines);
  console.log(
    `  $${total.toFixed(2)} per cluster-month excluding storage, $${(total + storageUsd).toFixed(2)} with storage ($${storageUsd.toFixed(2)} in S3 Standard)`,
  );
  if (profile.name === "busy") {
    busyCost = total;
    busyPlans = { day1: result.plan.day1.requests, dayN: result.plan.dayN.requests };
  }
  worstMultiplier = Math.max(worstMultiplier, multiplier);
}
console.log(
  `constant writes: $${busyCost.toFixed(2)} per cluster-month (excluding storage), plan requests day ${days}/day 1: ${busyPlans.dayN}/${busyPlans.day1}, storage multiplier: ${worstMultiplier.toFixed(2)}`,
);
