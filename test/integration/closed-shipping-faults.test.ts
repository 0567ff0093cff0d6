import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binlogSequence } from "../../core/binlog/manifest.js";
import { listChunks } from "../../core/store/binlog-chunks.js";
import { readBinlogIndex } from "../../core/store/binlog-index.js";
import { readBinlogManifest } from "../../core/store/catalog.js";
import { s3Client } from "../../host-agent/clients.js";
import type { ListResult } from "../../host-agent/commands/list.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { WriteWorkload } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const CLUSTER = "billing";
const location = { cluster: CLUSTER };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * S3 refuses the binlog index's PUT for a while (as it does under Object Lock without a checksum,
 * or in an outage): the streamer keeps shipping closed files whole, reports them as held only as
 * chunks meanwhile (status, watchdog, list), and once S3 accepts again every file is indexed, in
 * order, by the same streamer process.
 */
describe("closed-file shipping through an index outage", () => {
  const scratch = scratchDir("closed-faults");
  let s3: S3Server;
  let primary: MariaDbServer;
  let configFile: string;
  let stateDir: string;
  let streamer: ReturnType<typeof startAgent> | undefined;
  const client = () => s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  const status = () =>
    JSON.parse(readFileSync(path.join(stateDir, "binlog-stream.json"), "utf8")) as {
      chunkOnlyFiles: number;
      chunkOnlySince: string | null;
      closedError: string | null;
    };

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 941 });
    const setup = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: CLUSTER,
      host: "db-941",
      extra: { stream: { intervalSeconds: 2, roleCheckSeconds: 1 } },
    });
    configFile = setup.configFile;
    stateDir = setup.config.stateDir as string;
  }, 120_000);

  afterAll(async () => {
    streamer?.child.kill("SIGKILL");
    await streamer?.done;
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("index PUTs refused for a while, then accepted: every closed file ends up shipped whole and indexed in order, without a restart; status, the watchdog and list showed the chunk-only files meanwhile", async () => {
    const source = `${primary.serverId}-db-${primary.serverId}`;
    streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", configFile]);
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    await sleep(2000);
    await s3.injectFaults([
      { operation: "PutObject", keyContains: "/index/", status: 503, code: "SlowDown" },
    ]);
    const rotated: string[] = [];
    for (let i = 0; i < 3; i++) {
      rotated.push((await primary.query("SHOW BINARY LOGS")).at(-1)![0]!);
      await primary.query("FLUSH BINARY LOGS");
      await sleep(1500);
    }
    // Shipped whole (the manifests are there) but not indexed: chunk-only, and said so.
    await waitFor(
      "the rotated files to be shipped whole",
      async () => {
        for (const file of rotated)
          if (!(await readBinlogManifest(client(), BUCKET, location, source, file))) return false;
        return true;
      },
      { timeoutMs: 60_000 },
    );
    await waitFor("the streamer to report the chunk-only files", async () => status().chunkOnlyFiles >= 3, {
      timeoutMs: 30_000,
    });
    expect(status().closedError).toMatch(/BinlogIndexFailed|index/);
    expect(Date.parse(status().chunkOnlySince!)).toBeLessThanOrEqual(Date.now());
    expect(await readBinlogIndex(client(), BUCKET, location, source)).toEqual([]);

    const watchdog = await agent(["binlog-push", "--config", configFile]);
    expect(watchdog.exitCode, watchdog.stderr).toBe(0);
    expect(watchdog.output?.result).toMatchObject({
      streamer: "running",
      chunkOnlyFiles: expect.any(Number),
      chunkOnlySeconds: expect.any(Number),
      closedError: expect.stringContaining("index"),
    });
    expect(watchdog.output?.result?.chunkOnlyFiles).toBeGreaterThanOrEqual(3);

    const during = await agent(["list", "--config", configFile]);
    expect(during.exitCode, during.stderr).toBe(0);
    const listed = (during.output!.result as unknown as ListResult).binlogs.find((b) => b.source === source)!;
    expect(listed.files).toBe(0);
    expect(listed.chunkOnly.files).toBeGreaterThanOrEqual(3);
    expect(during.stderr).toContain("held only as chunks");

    // S3 accepts again: the same streamer indexes everything, in order.
    await s3.injectFaults([]);
    const pid = streamer.child.pid;
    await waitFor(
      "every rotated file to be indexed",
      async () => {
        const files = (await readBinlogIndex(client(), BUCKET, location, source)).map((r) => r.file);
        return rotated.every((file) => files.includes(file));
      },
      { timeoutMs: 120_000 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; the streamer logged:\n${streamer!.log().slice(-4000)}`);
    });
    await workload.stop();
    const records = await readBinlogIndex(client(), BUCKET, location, source);
    const files = records.map((record) => record.file);
    expect(files).toEqual([...files].sort((a, b) => binlogSequence(a) - binlogSequence(b)));
    expect(files.slice(0, rotated.length)).toEqual(rotated.slice().sort());
    for (const [i, record] of records.entries()) if (i > 0) expect(record.previousFile).toBe(files[i - 1]);
    await waitFor("the streamer to report no chunk-only file", async () => status().chunkOnlyFiles === 0, {
      timeoutMs: 30_000,
    });
    expect(status().closedError).toBeNull();
    expect(streamer.child.pid).toBe(pid);
    expect(streamer.child.exitCode).toBeNull();
    const after = await agent(["list", "--json", "--config", configFile]);
    const now = (after.output!.result as unknown as ListResult).binlogs.find((b) => b.source === source)!;
    expect(now.chunkOnly.files).toBe(0);
    expect(now.files).toBeGreaterThanOrEqual(3);
  }, 300_000);

  it("a file kept open by a quiet writer is rotated after stream.maxChunksPerFile chunks, so no file grows without bound; each is shipped whole", async () => {
    streamer?.child.kill("SIGKILL");
    await streamer?.done;
    const source = `${primary.serverId}-db-${primary.serverId}`;
    const bounded = path.join(path.dirname(configFile), "bounded.json");
    const config = JSON.parse(readFileSync(configFile, "utf8"));
    writeFileSync(
      bounded,
      JSON.stringify({ ...config, stream: { ...config.stream, intervalSeconds: 1, maxChunksPerFile: 3 } }),
    );
    const first = (await primary.query("SHOW BINARY LOGS")).at(-1)![0]!;
    streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", bounded]);
    // A heartbeat-like writer: one small transaction at a time, never enough to fill a file.
    for (let i = 0; i < 14; i++) {
      await primary.query(
        `INSERT INTO ${WriteWorkload.table} VALUES (${10_000_000 + i}, SHA2(${i}, 256), NOW(6))`,
      );
      await sleep(1200);
    }
    const files = (await primary.query("SHOW BINARY LOGS")).map((row) => row[0]!);
    const rotatedFiles = files.slice(files.indexOf(first), -1);
    expect(rotatedFiles.length).toBeGreaterThanOrEqual(2);
    await waitFor(
      "the rotated files to be shipped whole and indexed",
      async () => {
        const indexed = (await readBinlogIndex(client(), BUCKET, location, source)).map((r) => r.file);
        return rotatedFiles.every((file) => indexed.includes(file));
      },
      { timeoutMs: 60_000 },
    );
    const listing = await listChunks(client(), BUCKET, location, source);
    for (const file of rotatedFiles.slice(1)) {
      const chunks = listing.find((entry) => entry.file === file)?.chain.length ?? 0;
      expect(chunks, file).toBeLessThanOrEqual(3 + 1);
    }
    expect(streamer.log()).toContain("rotating the binlog to bound the work per file");
  }, 300_000);
});
