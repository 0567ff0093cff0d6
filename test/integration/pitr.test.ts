import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3Client } from "../../host-agent/clients.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import type { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";
import { setUpLocalAgent, startAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { WriteWorkload } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";
import { listCluster, restoreTargetHost } from "./restore-helpers.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("point-in-time restore from a backup and shipped binlogs", () => {
  const scratch = scratchDir("pitr");
  let s3: S3Server;
  let primary: MariaDbServer;
  let configFile: string;
  const restored: MariaDbServer[] = [];
  /** Rows 1..lastBeforePause were written before a pause of more than two seconds; the rest after. */
  let lastBeforePause = 0;
  let lastRow = 0;
  let pauseTime = "";
  let phaseTwoBase = 0;

  /** Runs the workload for `ms`, rotating the binlog every 300 ms so the rows span several files. */
  async function writeFor(ms: number): Promise<WriteWorkload> {
    const workload = await WriteWorkload.start(primary, { pauseMs: 3 });
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await sleep(300);
      await primary.query("FLUSH BINARY LOGS");
    }
    return workload;
  }

  /** A target host: its own datadir, socket and start command, as the agent's config there would say. */
  let secrets: LocalSecretsManager;

  const restoreTarget = (name: string, serverId: number) =>
    restoreTargetHost(scratch.dir, configFile, restored, name, serverId);

  const listing = () => listCluster(configFile);

  /** `rewind-agent restore --until` onto a target host, with any extra flags. */
  async function restoreUntil(
    until: string,
    target: { server: MariaDbServer; targetConfig: string },
    ...extra: string[]
  ) {
    return agent([
      "restore",
      "--until",
      until,
      ...extra,
      "--datadir",
      target.server.datadir,
      "--config",
      target.targetConfig,
    ]);
  }

  const rowsOf = WriteWorkload.rowsOf;

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 601 });
    ({ configFile, secrets } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-601",
    }));
    const first = await WriteWorkload.start(primary, { pauseMs: 3 });
    await sleep(500);
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      await primary.query("FLUSH BINARY LOGS");
    }
    lastBeforePause = await first.stop();
    // Every row so far committed before this moment; the next commits more than two seconds after,
    // so the target's whole second (binlog timestamps have one-second resolution) holds none of them.
    pauseTime = new Date().toISOString();
    await sleep(2300);
    const second = await writeFor(1500);
    phaseTwoBase = second.gtidSeqBase;
    lastRow = await second.stop();
  });

  afterAll(async () => {
    for (const server of restored) await server.destroy();
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("binlog-push run twice at once, and again later, ships each file exactly once", async () => {
    const runs = [0, 1].map(() => startAgent(AGENT_BUNDLE, ["binlog-push", "--config", configFile]));
    const results = await Promise.all(runs.map((run) => run.done));
    for (const result of results) expect(result.exitCode, result.stderr).toBe(0);
    const shipped = results.flatMap(
      (result) => (result.output?.result?.shipped as string[] | undefined) ?? [],
    );
    expect(new Set(shipped).size).toBe(shipped.length);
    expect(shipped.length).toBeGreaterThan(3);

    const later = await agent(["binlog-push", "--flush", "--config", configFile]);
    expect(later.exitCode, later.stderr).toBe(0);
    const laterShipped = later.output?.result?.shipped as string[];
    expect(laterShipped).toHaveLength(1);
    expect(shipped).not.toContain(laterShipped[0]);
    expect(later.output?.result?.lagSeconds).toBeLessThan(30);

    const listed = await s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint }).send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "orders/binlogs/601-db-601/" }),
    );
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    const manifests = keys.filter((key) => key.endsWith(".json") && !key.includes("/index/"));
    expect(manifests).toHaveLength(shipped.length + 1);
    // Every shipped file is in the source's index, once.
    const index = await s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint }).send(
      new GetObjectCommand({ Bucket: BUCKET, Key: "orders/binlogs/601-db-601/index/000000.json" }),
    );
    const records = JSON.parse(await index.Body!.transformToString()).records as { file: string }[];
    expect(records.map((record) => record.file)).toEqual(
      manifests.map((key) => key.slice(key.lastIndexOf("/") + 1, -".json".length)).sort(),
    );
  });

  it("a time target between two commits restores every row committed at or before it, and none after", async () => {
    const { server, targetConfig } = await restoreTarget("at-time", 701);
    const run = await restoreUntil(pauseTime, { server, targetConfig });
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(await rowsOf(server)).toEqual({ count: lastBeforePause, maxId: lastBeforePause, bad: 0 });
    const last = run.output?.result?.lastTransaction as { gtid: string; time: string };
    expect(Date.parse(last.time)).toBeLessThanOrEqual(Date.parse(pauseTime));
  });

  it("a GTID target includes that transaction and nothing after it", async () => {
    const row = lastBeforePause + Math.floor((lastRow - lastBeforePause) / 2);
    const gtid = `0-601-${phaseTwoBase + row}`;
    const { server, targetConfig } = await restoreTarget("at-gtid", 702);
    const run = await restoreUntil(gtid, { server, targetConfig });
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(run.output?.result?.gtidReached).toBe(gtid);
    expect(run.output?.result?.replayedBy).toBe("applier");
    expect(await rowsOf(server)).toEqual({ count: row, maxId: row, bad: 0 });
  });

  it("--scratch (restore drills) restores and replays on a private server, checks it, and leaves nothing behind", async () => {
    const gtid = `0-601-${phaseTwoBase + lastRow - 1}`;
    const datadir = `${scratch.dir}/drill/data`;
    const before = await rowsOf(primary);
    const run = await agent([
      "restore",
      "--until",
      gtid,
      "--scratch",
      "--datadir",
      datadir,
      "--config",
      configFile,
    ]);
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(run.output?.result?.gtidReached).toBe(gtid);
    expect(run.output?.result?.scratch).toEqual({ checkedTables: 1, removed: true });
    expect(existsSync(datadir)).toBe(false);
    // The host's own server was neither stopped nor changed.
    expect(await rowsOf(primary)).toEqual(before);

    const refused = await agent([
      "restore",
      "--until",
      gtid,
      "--scratch",
      "--move-aside",
      "--datadir",
      datadir,
      "--config",
      configFile,
    ]);
    expect(refused.exitCode).toBe(2);
    expect(refused.output?.error?.message).toContain("drop --move-aside");
  });

  it("the mariadb-binlog | mariadb fallback (--replay client) stops at the same transaction", async () => {
    const { server, targetConfig } = await restoreTarget("by-client", 707);
    const run = await restoreUntil(pauseTime, { server, targetConfig }, "--replay", "client");
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(run.output?.result?.replayedBy).toBe("client");
    expect(await rowsOf(server)).toEqual({ count: lastBeforePause, maxId: lastBeforePause, bad: 0 });
  });

  it("the latest shipped point (from list) restores every row", async () => {
    const window = (await listing()).window;
    expect(window.gaps).toEqual([]);
    expect(window.toGtid).toBe(`0-601-${phaseTwoBase + lastRow}`);
    const { server, targetConfig } = await restoreTarget("latest", 703);
    const run = await restoreUntil(window.toGtid!, { server, targetConfig });
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(await rowsOf(server)).toEqual({ count: lastRow, maxId: lastRow, bad: 0 });
  });

  it("--replica-of: restored to a point in time, the new replica catches up with the primary by GTID", async () => {
    const { server, targetConfig } = await restoreTarget("replica", 706);
    const run = await agent([
      "restore",
      "--until",
      pauseTime,
      "--datadir",
      server.datadir,
      "--replica-of",
      `127.0.0.1:${primary.port}`,
      "--config",
      targetConfig,
    ]);
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    expect(run.output?.result?.replication).toMatchObject({
      ioRunning: true,
      sqlRunning: true,
      lagSeconds: 0,
    });
    // A replica takes no writes of its own, and the result says so.
    expect(run.output?.result?.readOnly).toBe(true);
    expect(await server.scalar("SELECT @@read_only")).toBe("1");
    await primary.query(
      `INSERT INTO ${WriteWorkload.table} VALUES (${lastRow + 1}, SHA2(${lastRow + 1}, 256), NOW(6))`,
    );
    await waitFor(
      "the new replica to apply a fresh write",
      async () => (await rowsOf(server)).count === lastRow + 1,
    );
    expect(await rowsOf(server)).toEqual({ count: lastRow + 1, maxId: lastRow + 1, bad: 0 });
    await primary.query(`DELETE FROM ${WriteWorkload.table} WHERE id = ${lastRow + 1}`);
  });

  it("--replica-of with a port outside 1–65535 is refused before anything is planned or touched", async () => {
    const { server, targetConfig } = await restoreTarget("bad-port", 707);
    const run = await agent([
      "restore",
      "--until",
      pauseTime,
      "--datadir",
      server.datadir,
      "--replica-of",
      "127.0.0.1:99999",
      "--config",
      targetConfig,
    ]);
    expect(run.exitCode).toBe(2);
    expect(run.output?.error).toMatchObject({ name: "UsageError" });
    expect(run.output?.error?.message).toMatch(/port from 1 to 65535.*127\.0\.0\.1:99999/);
    expect(run.stderr).not.toMatch(/binlogs fetched|backup downloaded/);
  });

  it("--replica-of whose replication fails (a wrong password): the run says so, and replication is stopped, not retrying behind the message", async () => {
    const { server, targetConfig } = await restoreTarget("repl-refused", 708);
    // A config that still names a per-user secret (from before the accounts secret) uses it.
    secrets.put("rewind/orders/repl-wrong", { username: "rewind_repl", password: "not-the-password" });
    const config = JSON.parse(readFileSync(targetConfig, "utf8"));
    writeFileSync(
      targetConfig,
      JSON.stringify({ ...config, secrets: { ...config.secrets, repl: "rewind/orders/repl-wrong" } }),
    );
    const run = await agent([
      "restore",
      "--until",
      pauseTime,
      "--datadir",
      server.datadir,
      "--replica-of",
      `127.0.0.1:${primary.port}`,
      "--config",
      targetConfig,
    ]);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error).toMatchObject({ name: "ReplicationFailed" });
    expect(run.output?.error?.message).toMatch(
      /failed: .*Replication is stopped; the restored data is intact and read-only/,
    );
    // SHOW SLAVE STATUS: Slave_IO_Running and Slave_SQL_Running are its 11th and 12th columns.
    const [status] = await server.query("SHOW SLAVE STATUS");
    expect([status?.[10], status?.[11]]).toEqual(["No", "No"]);
    expect(await server.scalar("SELECT @@read_only")).toBe("1");
  });

  it("a deleted binlog object: list shows the gap, a restore past it is refused naming the file, one before it works", async () => {
    const lastFile = (await listing()).binlogs[0]!.last!;
    const missing = lastFile.replace(/\d+$/, (digits) =>
      String(Number(digits) - 1).padStart(digits.length, "0"),
    );
    const client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
    for (const suffix of [".zst.enc", ".json"]) {
      await client.send(
        new DeleteObjectCommand({ Bucket: BUCKET, Key: `orders/binlogs/601-db-601/${missing}${suffix}` }),
      );
    }
    const gaps = (await listing()).window.gaps;
    expect(gaps).toEqual([
      expect.objectContaining({
        after: `601-db-601/${lastFile.replace(/\d+$/, (digits) => String(Number(digits) - 2).padStart(digits.length, "0"))}`,
        next: `601-db-601/${lastFile}`,
        reason: expect.stringContaining("no source shipped the transactions after"),
      }),
    ]);

    const { server, targetConfig } = await restoreTarget("past-gap", 704);
    const refused = await restoreUntil(`0-601-${phaseTwoBase + lastRow}`, { server, targetConfig });
    expect(refused.exitCode).toBe(1);
    expect(refused.output?.error?.name).toBe("RestorePlanRefused");
    expect(refused.output?.error?.message).toContain(
      `the next shipped binlog, 601-db-601/${lastFile}, starts after them`,
    );

    const before = await restoreUntil(pauseTime, { server, targetConfig });
    expect(before.exitCode, before.stderr).toBe(0);
    expect(await rowsOf(server)).toEqual({ count: lastBeforePause, maxId: lastBeforePause, bad: 0 });
  });

  it("a corrupted binlog object stops the restore before the datadir is touched", async () => {
    const first = (await listing()).binlogs[0]!.first!;
    const object = s3.objectPath(BUCKET, `orders/binlogs/601-db-601/${first}.zst.enc`);
    const bytes = readFileSync(object);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
    writeFileSync(object, bytes);
    const { server, targetConfig } = await restoreTarget("corrupt", 705);
    const run = await restoreUntil(pauseTime, { server, targetConfig });
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.name).toBe("VerifyFailed");
    expect(run.output?.error?.message).toContain(first);
    expect(readFileSync(`${scratch.dir}/corrupt/my.cnf`, "utf8")).toContain("datadir=");
    expect(() => readFileSync(`${server.datadir}/ibdata1`)).toThrow(/ENOENT/);
  });
});
