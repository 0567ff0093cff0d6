import { closeSync, openSync, readSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gtidsAfter } from "../../core/binlog/manifest.js";
import { mariadbGtids } from "../../core/gtid/mariadb.js";
import { listChunks } from "../../core/store/binlog-chunks.js";
import { readBinlogIndex } from "../../core/store/binlog-index.js";
import { readBinlogManifest } from "../../core/store/catalog.js";
import { s3Client } from "../../host-agent/clients.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent, writeRestoreTargetConfig } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { WriteWorkload } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const CLUSTER = "ledger";
const location = { cluster: CLUSTER };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** LOG_EVENT_BINLOG_IN_USE_F in the format description event: still set on a file the server crashed with. */
function inUseFlag(file: string): boolean {
  const fd = openSync(file, "r");
  const head = Buffer.alloc(23);
  readSync(fd, head, 0, 23, 0);
  closeSync(fd);
  return (head.readUInt16LE(21) & 1) === 1;
}

/**
 * A binlog the server crashed with has no rotate or stop event. Its streamer was lost first, so
 * its last transactions are in no chunk: only whole-file shipping can carry them, up to the last
 * complete transaction, which is what the restarted server itself kept.
 */
describe("a crash-closed binlog is shipped whole and indexed, with exactly what the server kept", () => {
  const scratch = scratchDir("crash-closed");
  let s3: S3Server;
  let primary: MariaDbServer;
  let configFile: string;
  let streamer: ReturnType<typeof startAgent> | undefined;
  let restored: MariaDbServer | undefined;
  const client = () => s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });

  const rowsOf = WriteWorkload.rowsOf;

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 931 });
    ({ configFile } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: CLUSTER,
      host: "db-931",
      extra: { stream: { intervalSeconds: 5, roleCheckSeconds: 1 } },
    }));
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
  }, 300_000);

  afterAll(async () => {
    streamer?.child.kill("SIGKILL");
    await streamer?.done;
    await restored?.destroy();
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("kill -9 of the server mid-write: after its restart the crashed file is shipped up to its last complete transaction, indexed, and restores", async () => {
    streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", configFile]);
    const source = `${primary.serverId}-db-${primary.serverId}`;
    await WriteWorkload.start(primary, { pauseMs: 2 });
    await sleep(4000);
    // The streamer is lost first, then the server, mid-write: the file's last transactions were
    // never chunked.
    streamer.child.kill("SIGKILL");
    await streamer.done;
    await sleep(1500);
    const crashed = (await primary.query("SHOW BINARY LOGS")).at(-1)![0]!;
    await primary.kill();
    const crashedPath = path.join(primary.datadir, crashed);
    expect(inUseFlag(crashedPath)).toBe(true);

    // The server recovers, and opens a new binlog; what it kept is its binlog position now.
    primary = await MariaDbServer.start({
      baseDir: `${scratch.dir}/primary`,
      serverId: 931,
      port: primary.port,
      existingDatadir: primary.datadir,
    });
    const kept = await primary.gtidBinlogPos();
    const keptRows = await rowsOf(primary);
    expect(keptRows.bad).toBe(0);
    expect((await primary.query("SHOW BINARY LOGS")).at(-1)![0]).not.toBe(crashed);

    streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", configFile]);
    await waitFor(
      `${crashed} to be shipped whole and indexed`,
      async () =>
        (await readBinlogIndex(client(), BUCKET, location, source)).some((record) => record.file === crashed),
      { timeoutMs: 60_000 },
    );
    const manifest = (await readBinlogManifest(client(), BUCKET, location, source, crashed))!;
    // Exactly the transactions the server kept: nothing it rolled back, nothing missing.
    expect(gtidsAfter(manifest).toString()).toBe(mariadbGtids.parseSet(kept).toString());
    expect(manifest.crashRecovered?.fileBytes).toBeGreaterThanOrEqual(manifest.size);
    // The chunks stopped short of it: those transactions reached S3 only in the whole file.
    const listing = (await listChunks(client(), BUCKET, location, source)).find(
      (entry) => entry.file === crashed,
    );
    expect(listing?.chain.at(-1)?.end ?? 0).toBeLessThan(manifest.size);

    restored = await MariaDbServer.configure({
      baseDir: `${scratch.dir}/restored`,
      serverId: 932,
      existingDatadir: `${scratch.dir}/restored/data`,
    });
    const target = writeRestoreTargetConfig(configFile, restored, `${scratch.dir}/restored.json`);
    const run = await agent(["restore", "--until", kept, "--datadir", restored.datadir, "--config", target]);
    expect(run.exitCode, run.stderr.slice(-2000)).toBe(0);
    expect(run.output?.result?.binlogs).toContain(`${source}/${crashed}`);
    expect(await rowsOf(restored)).toEqual(keptRows);
  }, 300_000);
});
