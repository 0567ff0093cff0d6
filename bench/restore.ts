/**
 * `npm run bench:restore [-- --size-mb 600]`
 *
 * Restore of a generated backup (default ~600 MB of data), against the shell pipeline a DBA would
 * run on a plain compressed stream in the same S3 stand-in:
 *   (a) aws s3 cp s3://…/stream.xb.zst - | zstd -d | mbstream -x -C DIR   then   mariabackup --prepare
 *   (b) rewind-agent restore --backup-id ID --no-start: parallel ranged GETs, SHA-256 of every part,
 *       decryption, zstd -d, mbstream -x, prepare, and the swap into place
 * Target: (b) within 10% of (a) while verifying everything.
 *
 * Then replay of a generated workload (default 200,000 single-row transactions) after that backup:
 *   (c) mariadb-binlog | mariadb   (rewind-agent restore --replay client)
 *   (d) the server's parallel replication applier fed by a local binlog source (the default)
 * Target: (d) at least twice as fast as (c).
 *
 * Then one table of about 5% of the server (rewind_test.small, in the backup), to the point after
 * that workload (the hour of writes after the backup), restored two ways:
 *   (e) the whole server restored to the point (the applier's run of (d): download, extract,
 *       prepare, start, replay), as a table restore did before it could be partial
 *   (f) rewind-agent restore --tables rewind_test.small --until … into the live server: only the
 *       system's files and the table's extracted, only its transactions replayed, then copied
 * Target: (f)/(e) ≤ 0.5, and the scratch bytes each used.
 *
 * Then an incremental backup after that hour of writes (the new rows' pages and the 1% of
 * updates to the small table: about 5% of the server's pages), against the full backup:
 *   (g) its time and stored bytes ÷ the full backup's
 *   (h) a restore to the newest point through full + incremental, replaying binlogs from the
 *       incremental's position, ÷ the same restore from the full backup (the incremental's
 *       manifest held aside for it), replaying every binlog since
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { backupManifestKey } from "../core/layout.js";
import { s3Client } from "../host-agent/clients.js";
import { bundleAgent } from "../infra/bundle-agent.js";
import { S3Server } from "../sandbox/aws/s3-server.js";
import { runAgent, setUpLocalAgent, writeRestoreTargetConfig } from "../sandbox/hosts/agent.js";
import { MariaDbServer } from "../sandbox/hosts/mariadb-server.js";
import { loadDataset } from "../sandbox/hosts/workload.js";
import { toolCredentialsFile } from "./tool-credentials.js";

const { values } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "1200" },
    transactions: { type: "string", default: "200000" },
  },
});
const transactions = Number(values.transactions);
const size = Number(values["size-mb"]);
const root = path.resolve(".sandbox", "bench-restore");
const bucket = "rewind-bench";
const awsEnv = {
  AWS_ACCESS_KEY_ID: "sandbox",
  AWS_SECRET_ACCESS_KEY: "sandbox",
  AWS_DEFAULT_REGION: "us-east-1",
};

/** `download 2.1 s, extract 3 s, …` from a restore's phases. */
function phaseLine(phases: unknown): string {
  return ((phases ?? []) as { phase: string; seconds: number | null }[])
    .map((p) => `${p.phase} ${(p.seconds ?? 0).toFixed(1)} s`)
    .join(", ");
}

async function shell(script: string, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn("bash", ["-o", "pipefail", "-c", script], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-3000);
  });
  const [code] = await once(child, "close");
  if (code !== 0) throw new Error(`${script} failed: ${stderr}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

rmSync(root, { recursive: true, force: true });
const bundle = await bundleAgent(path.join(root, "rewind-agent.mjs"));
const s3 = await S3Server.start({ storageDir: path.join(root, "s3"), buckets: [bucket] });
const server = await MariaDbServer.start({
  baseDir: path.join(root, "db"),
  serverId: 1,
  innodbBufferPoolMiB: 256,
});
try {
  console.error(`loading ~${size} MB…`);
  await loadDataset(server, { megabytes: size });
  // The table a DBA wants back: about 5% of the server, written before the backup.
  const smallRows = Math.ceil((size * 0.05 * 1024 * 1024) / 1100);
  await server.query(
    `CREATE TABLE rewind_test.small (id BIGINT PRIMARY KEY, c VARCHAR(1024) NOT NULL);
     INSERT INTO rewind_test.small SELECT id, c FROM rewind_test.dataset ORDER BY id LIMIT ${smallRows};`,
  );
  const setup = await setUpLocalAgent({
    bundle,
    dir: path.join(root, "agent"),
    server,
    s3Endpoint: s3.endpoint,
    bucket,
    cluster: "bench",
    host: "db",
  });
  // The baseline pipelines log in with the same option file the agent writes for the tool.
  const credentials = toolCredentialsFile(setup, server, path.join(root, "agent", "bench-client.cnf"));
  const tmp = path.join(root, "tmp");
  mkdirSync(tmp, { recursive: true });
  console.error("taking the two backups…");
  await shell(
    `mariabackup --defaults-extra-file=${credentials} --backup --stream=xbstream --datadir=${server.datadir} --target-dir=${tmp} --tmpdir=${tmp} | zstd -T0 -3 -q | aws --endpoint-url ${s3.endpoint} s3 cp - s3://${bucket}/plain/stream.xb.zst`,
    awsEnv,
  );
  const backup = await runAgent(bundle, ["backup", "--type", "full", "--config", setup.configFile]);
  if (backup.exitCode !== 0) throw new Error(`agent backup failed: ${backup.stderr.slice(-2000)}`);
  const backupId = backup.output!.result!.backupId as string;
  const fullStored = backup.output!.result!.storedBytes as number;
  const fullSeconds = backup.output!.result!.seconds as number;
  const storedMiB = fullStored / 1024 / 1024;

  console.error("restoring…");
  const pipelineDir = path.join(root, "pipeline");
  mkdirSync(pipelineDir);
  const pipelineSeconds = await shell(
    `aws --endpoint-url ${s3.endpoint} s3 cp s3://${bucket}/plain/stream.xb.zst - | zstd -d -q | mbstream -x -C ${pipelineDir} && mariabackup --prepare --target-dir=${pipelineDir} --use-memory=256M`,
    awsEnv,
  );
  const agentStarted = process.hrtime.bigint();
  const restored = await runAgent(bundle, [
    "restore",
    "--backup-id",
    backupId,
    "--datadir",
    path.join(root, "agent-restore"),
    "--no-start",
    "--config",
    setup.configFile,
  ]);
  if (restored.exitCode !== 0) throw new Error(`agent restore failed: ${restored.stderr.slice(-2000)}`);
  const agentSeconds = Number(process.hrtime.bigint() - agentStarted) / 1e9;

  console.error(`writing ${transactions} transactions…`);
  await server.query(
    `SET GLOBAL innodb_flush_log_at_trx_commit = 2;
     CREATE TABLE rewind_test.replay (id BIGINT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, KEY (k));
     DELIMITER //
     CREATE PROCEDURE rewind_test.replay_writes(n BIGINT)
     BEGIN
       DECLARE i BIGINT DEFAULT 1;
       WHILE i <= n DO
         INSERT INTO rewind_test.replay VALUES (i, i % 1000, SHA2(i, 256));
         -- One write in 100 lands on the table restored below.
         IF i % 100 = 0 THEN UPDATE rewind_test.small SET c = SHA2(i, 256) WHERE id = i / 100; END IF;
         SET i = i + 1;
       END WHILE;
     END//
     DELIMITER ;
     CALL rewind_test.replay_writes(${transactions});`,
  );
  const pushed = await runAgent(bundle, ["binlog-push", "--flush", "--config", setup.configFile]);
  if (pushed.exitCode !== 0) throw new Error(`binlog-push failed: ${pushed.stderr.slice(-2000)}`);
  const latest = await server.gtidBinlogPos();
  const replay = async (
    method: string,
    serverId: number,
    name = method,
    until = latest,
    rows = transactions,
  ) => {
    const target = await MariaDbServer.configure({
      baseDir: path.join(root, `replay-${name}`),
      serverId,
      existingDatadir: path.join(root, `replay-${name}`, "data"),
      innodbBufferPoolMiB: 256,
    });
    const targetConfig = writeRestoreTargetConfig(
      setup.configFile,
      target,
      path.join(root, `replay-${name}.json`),
    );
    try {
      const run = await runAgent(bundle, [
        "restore",
        "--until",
        until,
        "--replay",
        method,
        "--datadir",
        target.datadir,
        "--config",
        targetConfig,
      ]);
      if (run.exitCode !== 0)
        throw new Error(`restore --replay ${method} failed: ${run.stderr.slice(-2000)}`);
      const count = Number(await target.scalar("SELECT COUNT(*) FROM rewind_test.replay"));
      if (count !== rows) throw new Error(`--replay ${method} restored ${count} rows, not ${rows}`);
      const result = run.output!.result!;
      return {
        replaySeconds: result.replaySeconds as number,
        totalSeconds: result.seconds as number,
        phases: phaseLine(result.phases),
        chain: result.chain as string[],
        smallChecksum: (await target.query("CHECKSUM TABLE rewind_test.small"))[0]![1],
        // A whole restore extracts the whole backup.
        extractedBytes: backup.output!.result!.rawBytes as number,
      };
    } finally {
      await target.destroy();
    }
  };
  console.error("replaying…");
  const clientSeconds = (await replay("client", 11)).replaySeconds;
  const whole = await replay("applier", 12);
  const applierSeconds = whole.replaySeconds;

  console.error("restoring rewind_test.small alone…");
  const tableRun = await runAgent(bundle, [
    "restore",
    "--tables",
    "rewind_test.small",
    "--until",
    latest,
    "--as",
    "_restored",
    "--config",
    setup.configFile,
  ]);
  if (tableRun.exitCode !== 0) throw new Error(`restore --tables failed: ${tableRun.stderr.slice(-2000)}`);
  const tableResult = tableRun.output!.result!;
  const partial = tableResult.partial as {
    used: boolean;
    reason?: string;
    extractedBytes?: number;
    fetchedStoredBytes?: number;
    storedBytes?: number;
    replayedTransactions?: number;
    skippedTransactions?: number;
  };
  if (!partial.used) throw new Error(`the table restore was not partial: ${partial.reason}`);
  const restoredChecksum = (await server.query("CHECKSUM TABLE rewind_test.small_restored"))[0]![1];
  if (restoredChecksum !== whole.smallChecksum)
    throw new Error("the table restore's rows differ from the whole restore's");
  const tableSeconds = tableResult.seconds as number;

  console.error("taking an incremental backup and restoring through the chain…");
  const incremental = await runAgent(bundle, [
    "backup",
    "--type",
    "incremental",
    "--config",
    setup.configFile,
  ]);
  if (incremental.exitCode !== 0 || incremental.output?.result?.type !== "incremental")
    throw new Error(`incremental backup failed: ${incremental.stderr.slice(-2000)}`);
  const incrementalStored = incremental.output!.result!.storedBytes as number;
  const incrementalSeconds = incremental.output!.result!.seconds as number;
  // The same point both ways: the newest one (the writes, the table copy, then one more, so the
  // incremental's consistent point is not the target itself).
  await server.query("INSERT INTO rewind_test.replay VALUES (0, 0, 'after the incremental')");
  const pushedAgain = await runAgent(bundle, ["binlog-push", "--flush", "--config", setup.configFile]);
  if (pushedAgain.exitCode !== 0) throw new Error(`binlog-push failed: ${pushedAgain.stderr.slice(-2000)}`);
  const newest = await server.gtidBinlogPos();
  // From the full backup: the incremental's manifest held aside, so the plan cannot use it.
  Object.assign(process.env, awsEnv);
  const s3client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  const incrementalKey = backupManifestKey(
    { cluster: "bench" },
    incremental.output!.result!.backupId as string,
  );
  const held = await (
    await s3client.send(new GetObjectCommand({ Bucket: bucket, Key: incrementalKey }))
  ).Body!.transformToString();
  await s3client.send(new DeleteObjectCommand({ Bucket: bucket, Key: incrementalKey }));
  const fromFull = await replay("applier", 14, "from-full", newest, transactions + 1);
  await s3client.send(new PutObjectCommand({ Bucket: bucket, Key: incrementalKey, Body: held }));
  const throughChain = await replay("applier", 13, "chain", newest, transactions + 1);
  if (fromFull.chain.length !== 1 || throughChain.chain.length !== 2)
    throw new Error(`expected the full backup, then the chain: ${fromFull.chain} / ${throughChain.chain}`);
  if (throughChain.smallChecksum !== fromFull.smallChecksum || fromFull.smallChecksum !== whole.smallChecksum)
    throw new Error("the restore through the chain holds other rows than the restore from the full backup");

  console.log(`\ndataset ~${size} MB, stored stream ${storedMiB.toFixed(0)} MiB`);
  console.log(`(a) aws s3 cp | zstd -d | mbstream -x + prepare   ${pipelineSeconds.toFixed(2)} s`);
  console.log(`(b) rewind-agent restore (verified, decrypted)      ${agentSeconds.toFixed(2)} s`);
  console.log(`ratio (b)/(a): ${(agentSeconds / pipelineSeconds).toFixed(2)}  (target ≤ 1.10)`);
  console.log(`\nreplay of ${transactions} transactions`);
  console.log(`(c) mariadb-binlog | mariadb                       ${clientSeconds.toFixed(2)} s`);
  console.log(`(d) parallel replication applier                   ${applierSeconds.toFixed(2)} s`);
  console.log(`speed-up (c)/(d): ${(clientSeconds / applierSeconds).toFixed(2)}x  (target ≥ 2)`);
  const MiB = 1024 * 1024;
  console.log(
    `\none table of ~5% (rewind_test.small, ${smallRows} rows) to the point after those ${transactions} transactions`,
  );
  console.log(
    `(e) the whole server restored                      ${whole.totalSeconds.toFixed(2)} s, scratch ${(whole.extractedBytes / MiB).toFixed(0)} MiB extracted`,
  );
  console.log(
    `(f) restore --tables, partial                      ${tableSeconds.toFixed(2)} s, scratch ${((partial.extractedBytes ?? 0) / MiB).toFixed(0)} MiB extracted (same rows as (e))`,
  );
  console.log(`    (e) ${whole.phases}`);
  console.log(`    (f) ${phaseLine(tableResult.phases)}`);
  console.log(
    `    (f) fetched ${((partial.fetchedStoredBytes ?? 0) / MiB).toFixed(0)} of ${((partial.storedBytes ?? 0) / MiB).toFixed(0)} MiB stored; replayed ${partial.replayedTransactions} transactions, left out ${partial.skippedTransactions} on other tables`,
  );
  console.log(`\nan incremental backup after those ${transactions} transactions`);
  console.log(
    `(g) full backup ${fullSeconds.toFixed(2)} s, ${(fullStored / MiB).toFixed(1)} MiB stored; incremental ${incrementalSeconds.toFixed(2)} s, ${(incrementalStored / MiB).toFixed(1)} MiB stored`,
  );
  console.log(`    incremental time / full time: ${(incrementalSeconds / fullSeconds).toFixed(2)}`);
  console.log(
    `(h) the newest point from the full backup, replaying every binlog since   ${fromFull.totalSeconds.toFixed(2)} s: ${fromFull.phases}`,
  );
  console.log(
    `    the same point through full + incremental (same rows)              ${throughChain.totalSeconds.toFixed(2)} s: ${throughChain.phases}`,
  );
  console.log(
    `    restore through the chain / restore replaying from the full: ${(throughChain.totalSeconds / fromFull.totalSeconds).toFixed(2)}`,
  );
  console.log(`table restore / whole restore: ${(tableSeconds / whole.totalSeconds).toFixed(2)}`);
  console.log(`incremental stored / full stored: ${(incrementalStored / fullStored).toFixed(2)}`);
} finally {
  await server.destroy();
  await s3.stop();
  rmSync(root, { recursive: true, force: true });
}
