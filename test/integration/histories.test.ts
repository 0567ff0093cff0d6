import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3Client } from "../../host-agent/clients.js";
import type { ListResult } from "../../host-agent/commands/list.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent, writeRestoreTargetConfig } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { newestShippedGtid } from "../../sandbox/hosts/shipping-probe.js";
import { WriteWorkload } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const REPL = { user: "rewind_repl", password: "repl-Pa55word" };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stream = { intervalSeconds: 2, roleCheckSeconds: 1, historyCheckSeconds: 5 };

/**
 * Histories (issue 22) on real MariaDB servers, fauxqs as S3 and the agent's CLI, as an on-call
 * DBA would drive them: a roll back and carry on, then a lossy failover. Rows are compared with
 * their write times, since the new primary reuses the ids (and GTID sequence numbers) of the
 * future it discarded.
 */
describe("histories: point-in-time restores after a roll-back and after a lossy failover", () => {
  const scratch = scratchDir("histories");
  let s3: S3Server;
  const servers: MariaDbServer[] = [];
  const streamers: ReturnType<typeof startAgent>[] = [];
  let nextServerId = 930;

  /** Every row with its write time, as the restored server must hold them. */
  async function rowsOf(server: MariaDbServer) {
    const rows = await server.query(
      `SELECT id, DATE_FORMAT(written_at, '%Y-%m-%d %H:%i:%s.%f') FROM ${WriteWorkload.table} ORDER BY id`,
    );
    return rows.map(([id, at]) => `${id}@${at}`);
  }

  async function newServer(name: string, start: boolean): Promise<MariaDbServer> {
    const serverId = nextServerId++;
    const server = start
      ? await MariaDbServer.start({ baseDir: `${scratch.dir}/${name}`, serverId })
      : await MariaDbServer.configure({
          baseDir: `${scratch.dir}/${name}`,
          serverId,
          existingDatadir: `${scratch.dir}/${name}/data`,
        });
    servers.push(server);
    return server;
  }

  /** An agent config for a host whose server a restore (re)creates: its own host name and state. */
  function hostConfig(from: string, server: MariaDbServer, name: string): string {
    const file = writeRestoreTargetConfig(from, server, `${scratch.dir}/${name}.json`);
    const config = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(
      file,
      JSON.stringify({
        ...config,
        host: name,
        stateDir: `${scratch.dir}/${name}-state`,
        workDir: `${scratch.dir}/${name}-work`,
      }),
      { mode: 0o600 },
    );
    return file;
  }

  function startStreamer(config: string) {
    const streamer = startAgent(AGENT_BUNDLE, ["binlog-stream", "--config", config]);
    streamers.push(streamer);
    return streamer;
  }

  async function stopStreamer(streamer: ReturnType<typeof startAgent>) {
    if (streamer.child.exitCode !== null || streamer.child.signalCode !== null) return;
    streamer.child.kill("SIGKILL");
    await streamer.done;
  }

  async function waitShipped(config: string, cluster: string, server: MariaDbServer, source: string) {
    const position = await server.gtidBinlogPos();
    const client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
    await waitFor(
      `${source}'s writes up to ${position} to be shipped`,
      async () => (await newestShippedGtid(client, BUCKET, { cluster }, source)) === position,
      { timeoutMs: 60_000 },
    ).catch((error: Error) => {
      const logs = streamers.map((streamer) => streamer.log().slice(-1500)).join("\n---\n");
      throw new Error(`${error.message} (${config}); streamers:\n${logs}`);
    });
  }

  /** Writes for about `ms`, then stops. */
  async function write(server: MariaDbServer, ms: number) {
    const workload = await WriteWorkload.start(server, { pauseMs: 10 });
    await sleep(ms);
    await workload.stop();
  }

  /** A target second strictly between the writes before and after it (MariaDB: whole seconds). */
  async function quietSecond(): Promise<string> {
    await sleep(1200);
    const target = new Date().toISOString();
    await sleep(1200);
    return target;
  }

  /** Restores onto a new host and returns the rows it holds, or fails with the agent's stderr. */
  async function restoreOnto(config: string, args: string[], name: string) {
    const server = await newServer(name, false);
    const run = await agent([
      "restore",
      ...args,
      "--datadir",
      server.datadir,
      "--config",
      hostConfig(config, server, name),
    ]);
    if (run.exitCode !== 0) return { run, server, rows: undefined };
    return { run, server, rows: await rowsOf(server) };
  }

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
  }, 60_000);

  afterAll(async () => {
    for (const streamer of streamers) await stopStreamer(streamer);
    for (const server of servers) await server.destroy().catch(() => undefined);
    await s3?.stop();
    scratch.remove();
  }, 120_000);

  it("roll back and carry on: after restoring a standby to before a bad DELETE and promoting it, restores follow its history and never P's discarded future", async () => {
    const cluster = "rollback";
    const p = await newServer("p", true);
    const { configFile: pConfig } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-p`,
      server: p,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster,
      host: "p",
      extra: { stream },
    });
    const pSource = `${p.serverId}-p`;
    await write(p, 500);
    backupIdOf(await agent(["backup", "--type", "full", "--config", pConfig]));
    const pStreamer = startStreamer(pConfig);
    await write(p, 2500);
    const beforeMistake = await rowsOf(p);
    const t1 = await quietSecond();
    // The mistake, then more of P's (soon discarded) future.
    await p.query(`DELETE FROM ${WriteWorkload.table} WHERE id % 3 = 0`);
    await write(p, 2000);
    const pFuture = await rowsOf(p);
    const inPFuture = await quietSecond();
    await write(p, 1000);
    await waitShipped(pConfig, cluster, p, pSource);

    // Roll back: the standby S restored to T1 and promoted; P retired.
    const s = await newServer("s", false);
    const sConfig = hostConfig(pConfig, s, "s");
    const promoted = await agent([
      "restore",
      "--until",
      t1,
      "--datadir",
      s.datadir,
      "--promote",
      "--config",
      sConfig,
    ]);
    expect(promoted.exitCode, promoted.stderr.slice(-3000)).toBe(0);
    const began = promoted.output!.result!.began as { id: string; parent: string; branch: { gtids: string } };
    expect(began.parent).toBe("initial");
    expect(await rowsOf(s)).toEqual(beforeMistake);
    expect(await s.scalar("SELECT @@read_only")).toBe("0");
    // P not retired yet: it takes a few more writes (in a later second than S's promotion), a
    // second primary, and says so.
    await sleep(1100);
    await write(p, 500);
    await waitShipped(pConfig, cluster, p, pSource);
    const pFinal = await p.gtidBinlogPos();
    await waitFor(
      "P's watchdog to report that P is a second primary",
      async () => {
        const run = await agent(["binlog-push", "--config", pConfig]);
        const result = run.output?.result as
          | { historyConflict?: number; lagSeconds?: number | null }
          | undefined;
        return result?.historyConflict === 1 && result.lagSeconds === null;
      },
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
    const twoPrimaries = await agent(["list", "--json", "--config", pConfig]);
    expect((twoPrimaries.output!.result as unknown as ListResult).conflicts).toEqual([
      expect.stringMatching(
        new RegExp(
          `^history initial is still written after the current history ${began.id} began \\(${pSource}`,
        ),
      ),
    ]);
    await stopStreamer(pStreamer);
    await p.stop();

    // Before S ships anything, a time in P's future resolves on S's history, on which nothing
    // happened between T1 and the promotion: P's rows before the mistake (it used to restore P's
    // future, the DELETE with it).
    const early = await restoreOnto(pConfig, ["--until", inPFuture], "early");
    expect(early.run.exitCode, early.run.stderr.slice(-3000)).toBe(0);
    expect(early.rows).toEqual(beforeMistake);
    // A time after the promotion is not shipped yet.
    const unshipped = await restoreOnto(pConfig, ["--until", new Date().toISOString()], "unshipped");
    expect(unshipped.run.exitCode).not.toBe(0);
    expect(unshipped.run.output?.error?.message).toMatch(
      new RegExp(`past what history ${began.id} has shipped: it branched at GTID ${began.branch.gtids}`),
    );
    // T1 itself is the branch point: exactly P's rows before the mistake.
    const atT1 = await restoreOnto(pConfig, ["--until", t1], "at-t1");
    expect(atT1.run.exitCode, atT1.run.stderr.slice(-3000)).toBe(0);
    expect(atT1.rows).toEqual(beforeMistake);

    // S carries on as the primary and ships.
    const sSource = `${s.serverId}-s`;
    startStreamer(sConfig);
    await write(s, 1500);
    const sFirst = await rowsOf(s);
    const sGtid = await s.gtidBinlogPos();
    const afterRollBack = await quietSecond();
    await write(s, 1500);
    const sAll = await rowsOf(s);
    await waitShipped(sConfig, cluster, s, sSource);

    const list = await agent(["list", "--json", "--config", sConfig]);
    expect(list.exitCode, list.stderr.slice(-2000)).toBe(0);
    const listed = list.output!.result as unknown as ListResult;
    expect(listed.currentHistory).toBe(began.id);
    expect(listed.histories.map((h) => [h.id, h.parent, h.current])).toEqual([
      ["initial", null, false],
      [began.id, "initial", true],
    ]);
    expect(listed.window).toMatchObject({ toGtid: await s.gtidBinlogPos(), gaps: [] });
    expect(listed.histories[0]!.window.toGtid).toBe(pFinal);

    // A time after the roll-back, a GTID written on S, and latest: P's rows to T1 plus S's, no P future.
    const byTime = await restoreOnto(pConfig, ["--until", afterRollBack], "by-time");
    expect(byTime.run.exitCode, byTime.run.stderr.slice(-3000)).toBe(0);
    expect(byTime.run.output?.result).toMatchObject({ history: began.id });
    expect(byTime.rows).toEqual(sFirst);
    const byGtid = await restoreOnto(pConfig, ["--until", sGtid], "by-gtid");
    expect(byGtid.run.exitCode, byGtid.run.stderr.slice(-3000)).toBe(0);
    expect(byGtid.rows).toEqual(sFirst);
    const latest = await restoreOnto(pConfig, ["--until", listed.window.toGtid!], "latest");
    expect(latest.run.exitCode, latest.run.stderr.slice(-3000)).toBe(0);
    expect(latest.rows).toEqual(sAll);
    // Each restore came up read-only: none of them is a second primary.
    expect(await latest.server.scalar("SELECT @@read_only")).toBe("1");

    // P's discarded future, for forensics: only when its history is named.
    const pLast = listed.histories[0]!.window.toGtid!;
    const refused = await restoreOnto(pConfig, ["--until", pLast], "refused");
    expect(refused.run.exitCode).not.toBe(0);
    expect(refused.run.output?.error?.message).toMatch(/is on history initial .*--history initial/);
    const forensic = await restoreOnto(pConfig, ["--until", inPFuture, "--history", "initial"], "forensic");
    expect(forensic.run.exitCode, forensic.run.stderr.slice(-3000)).toBe(0);
    expect(forensic.rows).toEqual(pFuture);
  }, 600_000);

  it("a roll-back in place: the primary restored onto itself and promoted goes on after its shipped binlogs, and a GTID both histories wrote needs its history named", async () => {
    const cluster = "inplace";
    const p = await newServer("in-place", true);
    const setup = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-in-place`,
      server: p,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster,
      host: "in-place",
      extra: { stream },
    });
    // One config for everything on the host: its state, and how the agent stops and starts it.
    const pConfig = hostConfig(setup.configFile, p, "in-place");
    const pSource = `${p.serverId}-in-place`;
    await write(p, 500);
    backupIdOf(await agent(["backup", "--type", "full", "--config", pConfig]));
    const streamer = startStreamer(pConfig);
    await write(p, 2000);
    const beforeMistake = await rowsOf(p);
    const t1 = await quietSecond();
    await p.query(`DELETE FROM ${WriteWorkload.table} WHERE id % 3 = 0`);
    await write(p, 1500);
    await waitShipped(pConfig, cluster, p, pSource);
    const discardedLast = await p.gtidBinlogPos();
    const shippedFiles = (await p.query("SHOW BINARY LOGS")).map(([file]) => file!);
    await stopStreamer(streamer);

    const promoted = await agent([
      "restore",
      "--until",
      t1,
      "--datadir",
      p.datadir,
      "--move-aside",
      "--promote",
      "--config",
      pConfig,
    ]);
    expect(promoted.exitCode, promoted.stderr.slice(-3000)).toBe(0);
    expect(await rowsOf(p)).toEqual(beforeMistake);
    // Its fresh binlog does not reuse a file name the source shipped.
    const [active] = (await p.query("SHOW MASTER STATUS"))[0]!;
    expect(Number(active!.split(".").at(-1))).toBeGreaterThan(Number(shippedFiles.at(-1)!.split(".").at(-1)));
    const began = promoted.output!.result!.began as { id: string; branch: { gtids: string } };
    startStreamer(pConfig);
    await write(p, 1500);
    const afterRollBack = await rowsOf(p);
    await waitShipped(pConfig, cluster, p, pSource);

    // Its newest GTID reuses a sequence number of the discarded future (the same server wrote
    // both), so the history is named; the Restore input's "latest" names the current one.
    const latest = await restoreOnto(
      pConfig,
      ["--until", await p.gtidBinlogPos(), "--history", began.id],
      "in-place-latest",
    );
    expect(latest.run.exitCode, latest.run.stderr.slice(-3000)).toBe(0);
    expect(latest.rows).toEqual(afterRollBack);
    // The same server wrote the same sequence numbers on both histories.
    const seq = Number(began.branch.gtids.split("-")[2]) + 2;
    expect(Number(discardedLast.split("-")[2])).toBeGreaterThan(seq);
    const shared = `0-${p.serverId}-${seq}`;
    const ambiguous = await restoreOnto(pConfig, ["--until", shared], "in-place-ambiguous");
    expect(ambiguous.run.exitCode).not.toBe(0);
    expect(ambiguous.run.output?.error?.message).toMatch(
      new RegExp(`GTID ${shared} exists on 2 histories.*${began.id}.*initial`),
    );
  }, 600_000);

  it("a lossy failover: the promoted replica lacks what the old primary shipped; it begins a history, list reports the loss, and restores follow it", async () => {
    const cluster = "lossy";
    const primary = await newServer("old-primary", true);
    const replica = await newServer("replica", true);
    await primary.createUser(REPL, "REPLICATION SLAVE");
    await replica.replicateFrom(primary, REPL);
    const first = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-old-primary`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster,
      host: "old-primary",
      extra: { stream },
    });
    const second = await setUpLocalAgent({
      dir: `${scratch.dir}/agent-replica`,
      server: replica,
      createUserOn: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster,
      host: "replica",
      secrets: first.secrets,
      extra: { stream, encryption: first.config.encryption },
    });
    await write(primary, 500);
    await waitFor(
      "the replica to catch up",
      async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
    );
    backupIdOf(await agent(["backup", "--type", "full", "--config", first.configFile]));
    const oldStreamer = startStreamer(first.configFile);
    startStreamer(second.configFile);
    await write(primary, 1500);
    await waitFor(
      "the replica to catch up",
      async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
    );
    // The replica stops receiving; the primary writes on and ships what the replica never gets.
    await replica.query("STOP SLAVE");
    await write(primary, 1500);
    await waitShipped(first.configFile, cluster, primary, `${primary.serverId}-old-primary`);
    await stopStreamer(oldStreamer);
    await primary.kill();

    await replica.query("RESET SLAVE ALL; SET GLOBAL read_only = 0;");
    await write(replica, 1500);
    const promotedRows = await rowsOf(replica);
    const target = await quietSecond();
    await write(replica, 1000);
    const allRows = await rowsOf(replica);
    await waitShipped(second.configFile, cluster, replica, `${replica.serverId}-replica`);

    const list = await agent(["list", "--json", "--config", second.configFile]);
    expect(list.exitCode, list.stderr.slice(-2000)).toBe(0);
    const listed = list.output!.result as unknown as ListResult;
    const branch = listed.histories.find((history) => history.current)!;
    expect(branch).toMatchObject({ parent: "initial", reason: "failover", host: "replica" });
    expect(branch.lost).toMatch(/^0-\d+-\d+$/);
    expect(listed.window.toGtid).toBe(await replica.gtidBinlogPos());

    const byTime = await restoreOnto(second.configFile, ["--until", target], "after-failover");
    expect(byTime.run.exitCode, byTime.run.stderr.slice(-3000)).toBe(0);
    expect(byTime.rows).toEqual(promotedRows);
    const latest = await restoreOnto(
      second.configFile,
      ["--until", listed.window.toGtid!],
      "after-failover-latest",
    );
    expect(latest.run.exitCode, latest.run.stderr.slice(-3000)).toBe(0);
    expect(latest.rows).toEqual(allRows);
  }, 600_000);
});
