/**
 * `npm run demo`: a live MariaDB with a write workload, a real backup into the local S3 stand-in
 * (mariabackup → zstd → encryption → segmented multipart uploads), a deep verify, a restore into a
 * fresh server checked row by row against the backup's GTID, binlog shipping rounds, a disaster
 * (DROP TABLE), and a point-in-time restore to the moment before it, proven row by row.
 * Exits non-zero if any proof fails.
 */
import { rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { bundleAgent } from "../bundle-agent.js";
import { runAgent, setUpLocalAgent, writeRestoreTargetConfig } from "./agent.js";
import { MariaDbServer } from "./mariadb-server.js";
import { S3Server } from "./s3-server.js";
import { gtidSequence, loadDataset, WORKLOAD_DB, WriteWorkload } from "./workload.js";

const { values } = parseArgs({
  options: { "size-mb": { type: "string", default: "150" }, keep: { type: "boolean", default: false } },
});
const sizeMb = Number(values["size-mb"]);
const root = path.resolve(".sandbox", "demo");
const bucket = "rewind-demo";
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const step = (text: string) => console.log(`\n▶ ${text}`);
const info = (text: string) => console.log(`  ${text}`);
const failures: string[] = [];
const prove = (claim: string, ok: boolean, detail = "") => {
  console.log(`  ${ok ? "✔" : "✘"} ${claim}${detail ? ` (${detail})` : ""}`);
  if (!ok) failures.push(claim);
};

async function agentOk(bundle: string, args: string[]) {
  const run = await runAgent(bundle, args);
  if (run.exitCode !== 0 || !run.output?.ok) {
    throw new Error(
      `rewind-agent ${args[0]} failed: ${run.output?.error?.message ?? run.stderr.slice(-2000)}`,
    );
  }
  return run.output.result as Record<string, unknown>;
}

rmSync(root, { recursive: true, force: true });
const servers: MariaDbServer[] = [];
let s3: S3Server | undefined;
try {
  step("Bundling the host agent (one file, plain node, no node_modules)");
  const bundle = await bundleAgent(path.join(root, "rewind-agent.mjs"));
  info(bundle);

  step("Starting the S3 stand-in (fauxqs, file mode) and a private MariaDB primary");
  s3 = await S3Server.start({ storageDir: path.join(root, "s3"), buckets: [bucket] });
  const primary = await MariaDbServer.start({
    baseDir: path.join(root, "primary"),
    serverId: 1,
    innodbBufferPoolMiB: 256,
  });
  servers.push(primary);
  info(`S3 at ${s3.endpoint}; MariaDB ${await primary.scalar("SELECT VERSION()")} on port ${primary.port}`);

  step(`Loading about ${sizeMb} MB of data`);
  await loadDataset(primary, { megabytes: sizeMb });
  const agentSetup = await setUpLocalAgent({
    dir: path.join(root, "agent"),
    server: primary,
    s3Endpoint: s3.endpoint,
    bucket,
    cluster: "orders",
    host: "db-primary",
  });
  info(`agent config: ${agentSetup.configFile}`);
  const status = await agentOk(bundle, ["status", "--config", agentSetup.configFile]);
  info(`status: ${status.role}, server_id ${status.serverId}, GTID ${status.gtidExecuted}`);

  step("Backing up while a workload writes (rewind-agent backup --type full)");
  const workload = await WriteWorkload.start(primary);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const backup = await agentOk(bundle, ["backup", "--type", "full", "--config", agentSetup.configFile]);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const lastRow = await workload.stop();
  const binlog = backup.binlog as { file: string; position: number; gtidSet: string };
  info(`backup id      ${backup.backupId}`);
  info(`manifest       ${backup.manifest}`);
  info(
    `size           ${((backup.rawBytes as number) / MiB).toFixed(1)} MiB raw → ${((backup.storedBytes as number) / MiB).toFixed(1)} MiB stored (zstd + AES-256-GCM), ${backup.segments} segment(s)`,
  );
  info(`throughput     ${backup.rawMiBPerSecond} MiB/s over ${backup.seconds} s`);
  info(`consistent at  ${binlog.file}:${binlog.position}, GTID ${binlog.gtidSet}`);
  info(`workload       ${lastRow} rows written in all, some of them after the backup's consistent point`);

  step("Verifying deeply (download, SHA-256 of every part, decrypt, zstd and xbstream framing)");
  const verified = await agentOk(bundle, [
    "verify",
    "--deep",
    "--backup-id",
    backup.backupId as string,
    "--config",
    agentSetup.configFile,
  ]);
  const stream = verified.stream as { files: number; payloadBytes: number };
  prove(
    "verify --deep passed",
    verified.ok === true,
    `${stream.files} files, ${(stream.payloadBytes / MiB).toFixed(1)} MiB`,
  );

  step("Restoring into a new datadir and starting a server on it (rewind-agent restore)");
  const datadir = path.join(root, "restored", "data");
  const restoreStarted = Date.now();
  const restored = await agentOk(bundle, [
    "restore",
    "--backup-id",
    backup.backupId as string,
    "--datadir",
    datadir,
    "--no-start",
    "--config",
    agentSetup.configFile,
  ]);
  const server = await MariaDbServer.start({
    baseDir: path.join(root, "restored"),
    serverId: 2,
    existingDatadir: datadir,
  });
  servers.push(server);
  const restoreSeconds = (Date.now() - restoreStarted) / 1000;
  info(
    `restored in ${restored.seconds} s (download + verify + decrypt + extract + prepare), server up after ${restoreSeconds.toFixed(1)} s`,
  );

  step("Proving the restore");
  const expectedRows = gtidSequence(binlog.gtidSet, 1) - workload.gtidSeqBase;
  const [count, maxId, bad] = (
    await server.query(`SELECT COUNT(*), MAX(id), SUM(payload <> SHA2(id, 256)) FROM ${WriteWorkload.table}`)
  )[0]!;
  prove(
    "every row committed up to the backup's GTID is there, and none after it",
    Number(count) === expectedRows && Number(maxId) === expectedRows && Number(bad) === 0,
    `${count} rows restored, ${expectedRows} expected from GTID ${binlog.gtidSet}`,
  );
  const checksum = async (db: MariaDbServer) =>
    (await db.query(`CHECKSUM TABLE ${WORKLOAD_DB}.dataset`))[0]![1];
  const [sourceSum, restoredSum] = [await checksum(primary), await checksum(server)];
  prove(
    "the dataset table checksums equal the primary's",
    sourceSum === restoredSum,
    `CHECKSUM ${restoredSum}`,
  );

  step(
    "Shipping binlogs while the workload keeps writing (rewind-agent binlog-push, as the schedule runs it)",
  );
  const more = await WriteWorkload.start(primary);
  let rpoSeconds: unknown = null;
  for (let round = 1; round <= 3; round++) {
    await sleep(800);
    const pushed = await agentOk(bundle, ["binlog-push", "--flush", "--config", agentSetup.configFile]);
    const shipped = pushed.shipped as string[];
    info(
      `round ${round}: shipped ${shipped.join(", ") || "nothing new"}; lag of the last shipped event ${pushed.lagSeconds} s`,
    );
  }
  const lastBeforeDisaster = await more.stop();
  const datasetBefore = await checksum(primary);
  const beforeDisaster = new Date().toISOString();
  await sleep(1500);

  step("Disaster: DROP TABLE rewind_test.dataset");
  await primary.query(`DROP TABLE ${WORKLOAD_DB}.dataset`);
  info(`dropped at ${new Date().toISOString()}; the last good moment was ${beforeDisaster}`);
  const final = await agentOk(bundle, ["binlog-push", "--flush", "--config", agentSetup.configFile]);
  rpoSeconds = final.lagSeconds;

  step(`Point-in-time restore to ${beforeDisaster} into a scratch server (rewind-agent restore --until)`);
  const scratch = await MariaDbServer.configure({
    baseDir: path.join(root, "pitr"),
    serverId: 3,
    existingDatadir: path.join(root, "pitr", "data"),
  });
  servers.push(scratch);
  const scratchConfig = writeRestoreTargetConfig(
    agentSetup.configFile,
    scratch,
    path.join(root, "agent", "scratch.json"),
  );
  const plan = await agentOk(bundle, [
    "restore",
    "--until",
    beforeDisaster,
    "--datadir",
    scratch.datadir,
    "--dry-run",
    "--config",
    scratchConfig,
  ]);
  info(`plan: backup ${plan.backupId}, then ${(plan.binlogs as string[]).join(", ")}`);
  const pitr = await agentOk(bundle, [
    "restore",
    "--until",
    beforeDisaster,
    "--datadir",
    scratch.datadir,
    "--config",
    scratchConfig,
  ]);
  info(
    `restored in ${pitr.seconds} s; ${(pitr.binlogs as string[]).length} binlog(s) replayed by the ${pitr.replayedBy} in ${pitr.replaySeconds} s; GTID ${pitr.gtidReached}`,
  );
  prove(
    "the dropped table is back, identical",
    (await checksum(scratch)) === datasetBefore,
    `CHECKSUM ${datasetBefore}`,
  );
  const after = (
    await scratch.query(`SELECT COUNT(*), MAX(id), SUM(payload <> SHA2(id, 256)) FROM ${WriteWorkload.table}`)
  )[0]!;
  prove(
    "every row written before the disaster is there, and nothing after it",
    Number(after[0]) === lastBeforeDisaster &&
      Number(after[1]) === lastBeforeDisaster &&
      Number(after[2]) === 0,
    `${after[0]} rows, ${lastBeforeDisaster} written before ${beforeDisaster}`,
  );

  step("Report");
  info(
    `backup     ${((backup.rawBytes as number) / MiB).toFixed(0)} MiB in ${backup.seconds} s (${backup.rawMiBPerSecond} MiB/s)`,
  );
  info(`restore    ${restored.seconds} s to a prepared datadir; point-in-time restore ${pitr.seconds} s`);
  info(`RPO        ${rpoSeconds} s (lag of the last shipped event at the last push)`);
  info(`proofs     ${failures.length === 0 ? "all passed" : `FAILED: ${failures.join("; ")}`}`);
  if (values.keep) info(`sandbox kept in ${root}; servers stop when this process exits`);
} catch (error) {
  console.error(`\n✘ demo failed: ${(error as Error).message}`);
  failures.push((error as Error).message);
} finally {
  for (const server of servers) await server.stop();
  await s3?.stop();
  if (!values.keep) rmSync(root, { recursive: true, force: true });
}
process.exitCode = failures.length === 0 ? 0 : 1;
