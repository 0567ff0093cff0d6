import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BinlogChunkManifest } from "../../core/binlog/chunk.js";
import { mariadbGtids } from "../../core/gtid/mariadb.js";
import { backupManifestKey, binlogChunkKey } from "../../core/layout.js";
import { listChunks, readChunkHeader } from "../../core/store/binlog-chunks.js";
import { readBinlogManifest } from "../../core/store/catalog.js";
import { s3Client } from "../../host-agent/clients.js";
import type { ListResult } from "../../host-agent/commands/list.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import {
  accountOf,
  setUpLocalAgent,
  startAgent,
  writeRestoreTargetConfig,
} from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { newestShippedGtid, ShippingProbe } from "../../sandbox/hosts/shipping-probe.js";
import { WriteWorkload } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const REPL = { user: "rewind_repl", password: "repl-Pa55word" };
const CLUSTER = "orders";
const location = { cluster: CLUSTER };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The streaming shipper on a real primary and replica: RPO under a steady write load, a restore
 * from the chunks of the active file, a streamer killed and S3 down, then the primary lost
 * (`kill -9` of the server and its streamer) mid-workload, the replica promoted, and restores to
 * a point after the failover from a backup taken on either host before it.
 */
describe("binlog-stream: binlogs in S3 within seconds, one window across a failover", () => {
  const scratch = scratchDir("stream");
  let s3: S3Server;
  let primary: MariaDbServer;
  let replica: MariaDbServer;
  let primaryConfig: string;
  let replicaConfig: string;
  const streamers = new Map<string, ReturnType<typeof startAgent>>();
  const restored: MariaDbServer[] = [];
  const client = () => s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  const sourceOf = (server: MariaDbServer) => `${server.serverId}-db-${server.serverId}`;
  let primaryBackup = "";
  let backupUser = "";

  function startStreamer(config: string) {
    const streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", config]);
    streamers.set(config, streamer);
    return streamer;
  }

  async function killStreamer(config: string) {
    const streamer = streamers.get(config);
    if (!streamer || streamer.child.exitCode !== null || streamer.child.signalCode !== null) return;
    streamer.child.kill("SIGKILL");
    await streamer.done;
  }

  /** Every chunk manifest a source shipped, by file, in order. */
  async function chunksOf(source: string): Promise<BinlogChunkManifest[]> {
    const manifests: BinlogChunkManifest[] = [];
    for (const { chain, beyond } of await listChunks(client(), BUCKET, location, source)) {
      for (const chunk of [...chain, ...beyond])
        manifests.push(await readChunkHeader(client(), BUCKET, chunk));
    }
    return manifests;
  }

  /** The newest GTID the source shipped, or null. */
  const newestShipped = (source: string) => newestShippedGtid(client(), BUCKET, location, source);

  const rowsOf = WriteWorkload.rowsOf;

  async function restoreTo(until: string, name: string, serverId: number) {
    const server = await MariaDbServer.configure({
      baseDir: `${scratch.dir}/${name}`,
      serverId,
      existingDatadir: `${scratch.dir}/${name}/data`,
    });
    restored.push(server);
    const config = writeRestoreTargetConfig(replicaConfig, server, `${scratch.dir}/${name}.json`);
    const run = await agent(["restore", "--until", until, "--datadir", server.datadir, "--config", config]);
    return { server, run };
  }

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 811 });
    replica = await MariaDbServer.start({ baseDir: `${scratch.dir}/replica`, serverId: 812 });
    await primary.createUser(REPL, "REPLICATION SLAVE");
    await replica.replicateFrom(primary, REPL);
    const stream = { intervalSeconds: 5, roleCheckSeconds: 1 };
    const first = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-primary`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: CLUSTER,
      host: "db-811",
      extra: { stream },
    });
    primaryConfig = first.configFile;
    backupUser = accountOf(first, "backup").username;
    // One cluster, one key: every host must read what the others shipped.
    const second = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-replica`,
      server: replica,
      createUserOn: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: CLUSTER,
      host: "db-812",
      secrets: first.secrets,
      extra: { stream, encryption: first.config.encryption },
    });
    replicaConfig = second.configFile;
    await waitFor(
      "the replica to catch up",
      async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
    );
    // A backup on the replica, then one on the primary: both before any streamed write.
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    await sleep(1000);
    backupIdOf(await agent(["backup", "--type", "full", "--config", replicaConfig]));
    primaryBackup = backupIdOf(await agent(["backup", "--type", "full", "--config", primaryConfig]));
    await workload.stop();
    startStreamer(primaryConfig);
    startStreamer(replicaConfig);
  }, 300_000);

  /** Waits for `check`, showing the primary's and replica's streamer logs when it times out. */
  async function waitShipped(what: string, check: () => Promise<boolean>, timeoutMs: number) {
    try {
      await waitFor(what, check, { timeoutMs });
    } catch (error) {
      const logs = [...streamers.values()].map((streamer) => streamer.log().slice(-3000)).join("\n---\n");
      throw new Error(`${(error as Error).message}; streamer logs:\n${logs}`);
    }
  }

  afterAll(async () => {
    for (const config of streamers.keys()) await killStreamer(config);
    for (const server of [primary, replica, ...restored]) await server?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("under a steady load every sample's newest shipped transaction is within 5 s of the newest committed; only the primary ships, and no binlog file is added", async () => {
    const filesBefore = (await primary.query("SHOW BINARY LOGS")).map((row) => row[0]);
    const firstId = Number(
      await primary.scalar(`SELECT COALESCE(MAX(id), 0) + 1 FROM ${WriteWorkload.table}`),
    );
    // The streamer's own sessions on the primary (it checks the role every second here), from
    // 15 s in (it has started) to the end.
    const streamerSessions = async () =>
      (
        await primary.query(
          `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '${backupUser}' ORDER BY ID`,
        )
      ).map((row) => row[0]);
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    const probe = new ShippingProbe(
      client(),
      BUCKET,
      location,
      sourceOf(primary),
      primary,
      workload,
      firstId,
    );
    const until = Date.now() + 60_000;
    let sessionsBefore: (string | null | undefined)[] | undefined;
    while (Date.now() < until) {
      await probe.sample();
      if (!sessionsBefore && until - Date.now() < 45_000) sessionsBefore = await streamerSessions();
      await sleep(250);
    }
    const lastId = await workload.stop();
    const report = probe.summary();
    process.stderr.write(`shipping lag over a minute of writes: ${JSON.stringify(report)}\n`);
    expect(report.samples).toBeGreaterThan(100);
    expect(report.max).toBeLessThanOrEqual(5);
    expect(lastId).toBeGreaterThan(3000);
    // The streamer follows the active file: no FLUSH BINARY LOGS, no extra files.
    expect((await primary.query("SHOW BINARY LOGS")).map((row) => row[0])).toEqual(filesBefore);
    expect(await chunksOf(sourceOf(replica))).toEqual([]);
    // A minute of status and role checks ran on the one connection the streamer opened, not on
    // a new login (a client process) each time.
    expect(sessionsBefore).toHaveLength(1);
    expect(await streamerSessions()).toEqual(sessionsBefore);
  }, 180_000);

  it("restores from the chunks of the active file to the newest shipped transaction", async () => {
    const position = await primary.gtidBinlogPos();
    await waitShipped(
      "the last write to be shipped",
      async () => (await newestShipped(sourceOf(primary))) === position,
      20_000,
    );
    const expected = await rowsOf(primary);
    const { server, run } = await restoreTo(position, "from-chunks", 821);
    expect(run.exitCode, run.stderr.slice(-2000)).toBe(0);
    expect(run.output?.result?.binlogs).toEqual([expect.stringMatching(/^811-db-811\/mariadb-bin\.\d+$/)]);
    expect(await rowsOf(server)).toEqual(expected);
  }, 300_000);

  it("a streamer killed mid-load and S3 down for 15 s: afterwards the chunks hold every transaction once, in order", async () => {
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    await sleep(4000);
    await killStreamer(primaryConfig);
    await sleep(2000);
    startStreamer(primaryConfig);
    await sleep(4000);
    await s3.stop();
    // Three shipping intervals and more: every upload in between fails and is retried.
    await sleep(15_000);
    await s3.restart();
    await sleep(3000);
    await workload.stop();
    const position = await primary.gtidBinlogPos();
    await waitShipped(
      "the streamer to catch up",
      async () => (await newestShipped(sourceOf(primary))) === position,
      60_000,
    );
    const chunks = await chunksOf(sourceOf(primary));
    const byFile = new Map<string, BinlogChunkManifest[]>();
    for (const chunk of chunks) byFile.set(chunk.file, [...(byFile.get(chunk.file) ?? []), chunk]);
    let shipped = mariadbGtids.empty();
    let transactions = 0;
    for (const [file, fileChunks] of byFile) {
      fileChunks.forEach((chunk, index) => {
        expect(chunk.chunk, file).toBe(index);
        expect(chunk.startOffset, `${file} chunk ${index}`).toBe(
          index === 0 ? 0 : fileChunks[index - 1]!.endOffset,
        );
        // Each chunk's first transaction is the next after the ones before it: none twice, none missing.
        if (chunk.chunkFirstGtid) {
          const before = mariadbGtids
            .parseSet(chunk.fileGtidsBefore)
            .union(
              index === 0 ? mariadbGtids.empty() : mariadbGtids.parseSet(fileChunks[index - 1]!.gtidsAdded),
            );
          expect(
            before.isNext(chunk.chunkFirstGtid),
            `${file} chunk ${index} starts at ${chunk.chunkFirstGtid} after ${before}`,
          ).toBe(true);
        }
      });
      const last = fileChunks.at(-1)!;
      shipped = shipped
        .union(mariadbGtids.parseSet(last.fileGtidsBefore))
        .union(mariadbGtids.parseSet(last.gtidsAdded));
      transactions += fileChunks.reduce((sum, chunk) => sum + chunk.chunkTransactions, 0);
      expect(
        fileChunks.reduce((sum, chunk) => sum + chunk.chunkTransactions, 0),
        file,
      ).toBe(last.transactions);
    }
    expect(shipped.toString()).toBe(position);
    expect(transactions).toBeGreaterThan(1000);
  }, 300_000);

  it("a chunk missing from every source is a gap: list names it, and a restore past it is refused before anything is downloaded", async () => {
    const source = sourceOf(primary);
    const active = (await listChunks(client(), BUCKET, location, source)).at(-1)!;
    const index = Math.floor(active.chain.length / 2);
    expect(index).toBeGreaterThan(0);
    const chunk = active.chain[index]!;
    // One object a chunk, its byte range in its key: deleting it leaves a hole in the chain.
    expect(chunk.key).toBe(binlogChunkKey(location, source, active.file, chunk.start, chunk.end));
    const keys = [chunk.key];
    const saved = new Map<string, Uint8Array>();
    for (const key of keys) {
      const object = await client().send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      saved.set(key, await object.Body!.transformToByteArray());
      await client().send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    }
    try {
      const missing = `bytes ${chunk.start}-${chunk.end} of ${active.file} from ${source} were never shipped`;
      const list = await agent(["list", "--json", "--config", primaryConfig]);
      expect(list.exitCode, list.stderr.slice(-2000)).toBe(0);
      const window = (list.output!.result as unknown as ListResult).window;
      expect(window.gaps).toEqual([expect.objectContaining({ reason: expect.stringContaining(missing) })]);
      const { run } = await restoreTo(await primary.gtidBinlogPos(), "past-missing-chunk", 824);
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.name).toBe("RestorePlanRefused");
      expect(run.output?.error?.message).toContain(missing);
    } finally {
      // Put back as it was, for the failover below.
      for (const [key, body] of saved) {
        await client().send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
      }
    }
  }, 120_000);

  it("follows the server's rotations: each closed file gets its final chunk, is shipped whole and indexed, and a restore runs across them", async () => {
    const source = sourceOf(primary);
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    const rotated: string[] = [];
    for (let i = 0; i < 2; i++) {
      await sleep(2000);
      rotated.push((await primary.query("SHOW BINARY LOGS")).at(-1)![0]!);
      // What max_binlog_size does, now.
      await primary.query("FLUSH BINARY LOGS");
    }
    await sleep(2000);
    await workload.stop();
    const position = await primary.gtidBinlogPos();
    await waitShipped(
      "the streamer to catch up",
      async () => (await newestShipped(source)) === position,
      30_000,
    );
    await waitShipped(
      "the rotated files to be shipped whole",
      async () => {
        for (const file of rotated)
          if (!(await readBinlogManifest(client(), BUCKET, location, source, file))) return false;
        return true;
      },
      30_000,
    );
    const chunks = await chunksOf(source);
    for (const file of rotated) {
      const manifest = (await readBinlogManifest(client(), BUCKET, location, source, file))!;
      // The file's last chunk ends where the file does: its rotate event is shipped too.
      const last = chunks.filter((chunk) => chunk.file === file).at(-1)!;
      expect(last.endOffset, file).toBe(manifest.size);
      expect(last.gtidsAdded, file).toBe(manifest.gtidsAdded);
    }
    const expected = await rowsOf(primary);
    const { server, run } = await restoreTo(position, "across-rotations", 825);
    expect(run.exitCode, run.stderr.slice(-2000)).toBe(0);
    expect(run.output?.result?.binlogs).toEqual(
      expect.arrayContaining(rotated.map((file) => `${source}/${file}`)),
    );
    expect(await rowsOf(server)).toEqual(expected);
  }, 180_000);

  it("the primary lost with kill -9 mid-workload, the replica promoted: restores after the failover bring back exactly the new primary's rows, from a backup on either host", async () => {
    const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
    await sleep(8000);
    const killedAt = Date.now() / 1000;
    await killStreamer(primaryConfig);
    await primary.kill();
    // Everything committed more than the interval before the loss is in S3.
    const shipped = await newestShipped(sourceOf(primary));
    const shippedSeq = Number(shipped!.split("-")[2]);
    const cutoffId = Number(
      await replica.scalar(
        `SELECT COALESCE(MAX(id), 0) FROM ${WriteWorkload.table} WHERE written_at <= FROM_UNIXTIME(${killedAt - 5})`,
      ),
    );
    expect(shippedSeq - workload.gtidSeqBase).toBeGreaterThanOrEqual(cutoffId);

    // Failover: the replica stops replicating and takes writes; its streamer notices and ships.
    await replica.query("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;");
    const after = await WriteWorkload.start(replica, { pauseMs: 5 });
    await sleep(4000);
    await after.stop();
    const expected = await rowsOf(replica);
    await sleep(2200);
    const target = new Date().toISOString();
    await sleep(1200);
    const later = await WriteWorkload.start(replica, { pauseMs: 5 });
    await sleep(1500);
    await later.stop();
    const position = await replica.gtidBinlogPos();
    await waitShipped(
      "the new primary's writes to be shipped",
      async () => (await newestShipped(sourceOf(replica))) === position,
      30_000,
    );

    const list = await agent(["list", "--json", "--config", replicaConfig]);
    expect(list.exitCode, list.stderr.slice(-2000)).toBe(0);
    const window = (list.output!.result as unknown as ListResult).window;
    expect(window.gaps).toEqual([]);
    expect(window.toGtid).toBe(position);

    const fromOld = await restoreTo(target, "after-failover-old", 822);
    expect(fromOld.run.exitCode, fromOld.run.stderr.slice(-2000)).toBe(0);
    expect(fromOld.run.output?.result).toMatchObject({ backupId: primaryBackup });
    expect(await rowsOf(fromOld.server)).toEqual(expected);

    // Without the old primary's backup, the replica's (taken before the failover, while it only
    // replicated and shipped nothing) restores the same rows through both hosts' chunks.
    await client().send(
      new DeleteObjectCommand({ Bucket: BUCKET, Key: backupManifestKey(location, primaryBackup) }),
    );
    const fromReplica = await restoreTo(target, "after-failover-replica", 823);
    expect(fromReplica.run.exitCode, fromReplica.run.stderr.slice(-2000)).toBe(0);
    expect(fromReplica.run.output?.result?.backupId).not.toBe(primaryBackup);
    expect(await rowsOf(fromReplica.server)).toEqual(expected);
  }, 400_000);
});
