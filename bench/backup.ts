/**
 * `npm run bench:backup [-- --size-mb 600 --size-mb 1200]`
 *
 * On a generated dataset of each size, measures wall time, throughput and peak RSS of:
 *   (a) the raw stream:      mariabackup --backup --stream=xbstream > /dev/null
 *   (b) a DBA's pipeline:    mariabackup --stream | zstd -T0 -3 | aws s3 cp - s3://…   (same S3 stand-in)
 *   (c) rewind-agent backup: the same stream, compressed, encrypted, hashed, segmented and checksummed
 * and prints the ratios. Targets: (c) at least as fast as (b); agent RSS under 200 MB at every size.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { bundleAgent } from "../infra/bundle-agent.js";
import { S3Server } from "../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent } from "../sandbox/hosts/agent.js";
import { MariaDbServer } from "../sandbox/hosts/mariadb-server.js";
import { loadDataset } from "../sandbox/hosts/workload.js";
import { RssSampler } from "./rss.js";
import { toolCredentialsFile } from "./tool-credentials.js";

const { values } = parseArgs({
  options: { "size-mb": { type: "string", multiple: true, default: ["600", "1200"] } },
});
const sizes = values["size-mb"]!.map(Number);
const root = path.resolve(".sandbox", "bench-backup");
const bucket = "rewind-bench";
const MiB = 1024 * 1024;

interface Measurement {
  readonly label: string;
  readonly seconds: number;
  readonly rawMiB: number;
  readonly uploaderRssMiB?: number;
  readonly toolRssMiB: number;
}

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv, uploader?: string) {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const sampler = new RssSampler(child.pid!);
  const [code] = await once(child, "close");
  sampler.stop();
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${stderr}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    seconds,
    toolRssMiB: Math.max(sampler.peakMiB("mariadb-backup"), sampler.peakMiB("mariabackup")),
    ...(uploader ? { uploaderRssMiB: sampler.peakMiB(uploader) } : {}),
  };
}

const line = (cells: (string | number)[]) =>
  console.log(cells.map((cell) => String(cell).padEnd(26)).join(""));

rmSync(root, { recursive: true, force: true });
const bundle = await bundleAgent(path.join(root, "rewind-agent.mjs"));
const s3 = await S3Server.start({ storageDir: path.join(root, "s3"), buckets: [bucket] });
const awsEnv = {
  AWS_ACCESS_KEY_ID: "sandbox",
  AWS_SECRET_ACCESS_KEY: "sandbox",
  AWS_DEFAULT_REGION: "us-east-1",
};
const results: { size: number; rows: Measurement[] }[] = [];
try {
  for (const size of sizes) {
    const dir = path.join(root, `db-${size}`);
    const server = await MariaDbServer.start({ baseDir: dir, serverId: 1, innodbBufferPoolMiB: 256 });
    try {
      console.error(`loading ~${size} MB…`);
      await loadDataset(server, { megabytes: size });
      const setup = await setUpLocalAgent({
        bundle,
        dir: path.join(dir, "agent"),
        server,
        s3Endpoint: s3.endpoint,
        bucket,
        cluster: "bench",
        host: `db-${size}`,
      });

      // The baseline pipelines log in with the same option file the agent writes for the tool.
      const credentials = toolCredentialsFile(setup, server, path.join(dir, "agent", "bench-client.cnf"));
      const mariabackup = (tmp: string) =>
        `mariabackup --defaults-extra-file=${credentials} --backup --stream=xbstream --datadir=${server.datadir} --target-dir=${tmp} --tmpdir=${tmp} --parallel=2`;
      const tmp = path.join(dir, "tmp");
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });

      const raw = await timed("bash", ["-o", "pipefail", "-c", `${mariabackup(tmp)} > /dev/null`], {});
      await timed("bash", ["-o", "pipefail", "-c", `${mariabackup(tmp)} | wc -c > ${dir}/raw-bytes`], {});
      const rawMiB = Number(readFileSync(`${dir}/raw-bytes`, "utf8")) / MiB;
      const dba = await timed(
        "bash",
        [
          "-o",
          "pipefail",
          "-c",
          `${mariabackup(tmp)} | zstd -T0 -3 -q | aws --endpoint-url ${s3.endpoint} s3 cp - s3://${bucket}/dba/${size}.xb.zst`,
        ],
        awsEnv,
        "aws",
      );
      const agentStarted = process.hrtime.bigint();
      const agentRun = startAgent(bundle, ["backup", "--type", "full", "--config", setup.configFile]);
      const sampler = new RssSampler(agentRun.child.pid!);
      const done = await agentRun.done;
      sampler.stop();
      if (done.exitCode !== 0) throw new Error(`agent backup failed: ${done.stderr.slice(-3000)}`);
      const agentSeconds = Number(process.hrtime.bigint() - agentStarted) / 1e9;
      results.push({
        size,
        rows: [
          { label: "(a) raw stream", rawMiB, ...raw },
          { label: "(b) mariabackup|zstd|aws", rawMiB, ...dba },
          {
            label: "(c) rewind-agent backup",
            rawMiB,
            seconds: agentSeconds,
            uploaderRssMiB: sampler.peakMiB("node") || sampler.peakMiB("MainThread"),
            toolRssMiB: Math.max(sampler.peakMiB("mariadb-backup"), sampler.peakMiB("mariabackup")),
          },
        ],
      });
    } finally {
      await server.destroy();
    }
  }
} finally {
  await s3.stop();
  rmSync(root, { recursive: true, force: true });
}

for (const { size, rows } of results) {
  console.log(`\ndataset ~${size} MB (stream ${rows[0]!.rawMiB.toFixed(0)} MiB)`);
  line(["pipeline", "wall s", "MiB/s", "uploader peak RSS MiB", "backup tool RSS MiB"]);
  for (const row of rows) {
    line([
      row.label,
      row.seconds.toFixed(2),
      (row.rawMiB / row.seconds).toFixed(1),
      row.uploaderRssMiB === undefined ? "-" : row.uploaderRssMiB.toFixed(0),
      row.toolRssMiB.toFixed(0),
    ]);
  }
  const [a, b, c] = rows as [Measurement, Measurement, Measurement];
  console.log(`ratio (c)/(b) wall time: ${(c.seconds / b.seconds).toFixed(2)}  (target ≤ 1.00)`);
  console.log(`ratio (c)/(a) wall time: ${(c.seconds / a.seconds).toFixed(2)}`);
  console.log(`agent peak RSS: ${c.uploaderRssMiB?.toFixed(0)} MiB (target < 200 MiB)`);
}
