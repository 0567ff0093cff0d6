import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { loadDataset, WORKLOAD_DB } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";
import { manifestOf } from "./restore-helpers.js";

describe("backing up a GTID replica", () => {
  const scratch = scratchDir("replica");
  let s3: S3Server;
  let primary: MariaDbServer;
  let replica: MariaDbServer;
  let config: Record<string, unknown>;
  let configFile: string;

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 501 });
    replica = await MariaDbServer.start({ baseDir: `${scratch.dir}/replica`, serverId: 502 });
    const repl = { user: "repl", password: "repl-password" };
    await primary.createUser(repl, "REPLICATION SLAVE");
    await replica.replicateFrom(primary, repl);
    await loadDataset(primary, { megabytes: 8 });
    ({ config, configFile } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: replica,
      createUserOn: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-502",
    }));
    await waitFor(
      "the replica to catch up",
      async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
    );
  });

  afterAll(async () => {
    await replica?.destroy();
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("status reports the replica's role, source and lag", async () => {
    const run = await agent(["status", "--config", configFile]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.output?.result).toMatchObject({
      engine: "mariadb",
      role: "replica",
      serverId: 502,
      gtidExecuted: await primary.gtidBinlogPos(),
      replication: {
        sourceHost: "127.0.0.1",
        sourcePort: primary.port,
        ioRunning: true,
        sqlRunning: true,
        lagSeconds: 0,
      },
      binlogSource: "502-db-502",
    });
  });

  it("a backup of the replica records the replica's own binlog position and GTID", async () => {
    const backupId = backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    const manifest = await manifestOf(config, backupId);
    expect(manifest.serverId).toBe(502);
    expect(manifest.binlog.gtidSet).toBe(await replica.gtidBinlogPos());
    expect(manifest.binlog.gtidSet).toMatch(/^0-501-\d+$/);
    expect(await replica.scalar(`SELECT COUNT(*) FROM ${WORKLOAD_DB}.dataset`)).toBe(
      await primary.scalar(`SELECT COUNT(*) FROM ${WORKLOAD_DB}.dataset`),
    );
  });

  it("refuses to start when the work directory lacks free space, saying where and how much", async () => {
    const tight = `${scratch.dir}/agent/tight.json`;
    writeFileSync(
      tight,
      JSON.stringify({ ...JSON.parse(readFileSync(configFile, "utf8")), minFreeMiB: 1024 ** 3 }),
    );
    const run = await agent(["backup", "--type", "full", "--config", tight]);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.name).toBe("InsufficientSpace");
    expect(run.output?.error?.message).toMatch(/MiB free in workDir .*Free space or point workDir elsewhere/);
  });
});
