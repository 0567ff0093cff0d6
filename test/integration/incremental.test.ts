import { readFileSync, writeFileSync } from "node:fs";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backupManifestKey } from "../../core/layout.js";
import { s3Client } from "../../host-agent/clients.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { WORKLOAD_DB, WriteWorkload } from "../../sandbox/hosts/workload.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";
import { listCluster, manifestOf, restoreTargetHost } from "./restore-helpers.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Incremental backups on a real MariaDB server with the real mariabackup: a chain of a full backup
 * and two incrementals, writes between each, binlogs shipped, restored to a point after the second
 * incremental and compared row by row with what the primary held at that point.
 */
describe("incremental backups and restores through a chain", () => {
  const scratch = scratchDir("incremental");
  let s3: S3Server;
  let primary: MariaDbServer;
  let configFile: string;
  const restored: MariaDbServer[] = [];
  let full = "";
  let first = "";
  let second = "";
  /** The primary's tables as they were at `pauseTime`. */
  let expected = "";
  let pauseTime = "";
  let ledger = 0;

  /** Every row of every test table, in order, as one digest per table. */
  async function digest(server: MariaDbServer): Promise<string> {
    const rows = await server.query(
      `SET SESSION group_concat_max_len = 1073741824;
       SELECT 'writes', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS(',', id, payload, written_at) ORDER BY id SEPARATOR ';')) FROM ${WriteWorkload.table}
       UNION ALL SELECT 'ledger', COUNT(*), MD5(GROUP_CONCAT(n ORDER BY n SEPARATOR ';')) FROM ${WORKLOAD_DB}.ledger
       UNION ALL SELECT 'bulk', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS(',', id, v, pad) ORDER BY id SEPARATOR ';')) FROM ${WORKLOAD_DB}.bulk`,
    );
    return rows.map((row) => row.join(" ")).join("\n");
  }

  /** Some writes of each kind: ledger rows (no key: a replayed duplicate would show), 5% of bulk's rows changed. */
  async function writeSome(round: number): Promise<void> {
    const workload = await WriteWorkload.start(primary, { pauseMs: 3 });
    for (let i = 0; i < 20; i++) {
      ledger += 1;
      await primary.query(`INSERT INTO ${WORKLOAD_DB}.ledger VALUES (${ledger})`);
    }
    // 5% of the rows, together: about 5% of the table's pages.
    const from = 4000 * round;
    await primary.query(
      `UPDATE ${WORKLOAD_DB}.bulk SET v = v + ${round} WHERE id BETWEEN ${from} AND ${from + 3999}`,
    );
    await primary.query("FLUSH BINARY LOGS");
    await sleep(400);
    await workload.stop();
  }

  function incremental(file = configFile) {
    return agent(["backup", "--type", "incremental", "--config", file]);
  }

  const listing = () => listCluster(configFile);
  const restoreTarget = (name: string, serverId: number) =>
    restoreTargetHost(scratch.dir, configFile, restored, name, serverId);

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 611 });
    ({ configFile } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-611",
    }));
    // About 24 MB that mostly stays put between backups, as most of a real server does.
    await primary.query(
      `CREATE DATABASE IF NOT EXISTS ${WORKLOAD_DB};
       CREATE TABLE ${WORKLOAD_DB}.ledger (n INT NOT NULL) ENGINE=InnoDB;
       CREATE TABLE ${WORKLOAD_DB}.bulk (id INT PRIMARY KEY, v INT NOT NULL, pad CHAR(255) NOT NULL) ENGINE=InnoDB;
       INSERT INTO ${WORKLOAD_DB}.bulk SELECT seq, 0, SHA2(seq, 256) FROM mysql.seq_1_to_80000;`,
    );
    // A backup copies the redo log from the last checkpoint on: on a busy server that is a bounded
    // stretch; on this small idle one, the whole load above unless the page cleaner keeps up.
    await primary.query(
      "SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0; SET GLOBAL innodb_max_dirty_pages_pct = 0",
    );
  });

  afterAll(async () => {
    for (const server of restored) await server.destroy();
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("without a base, an incremental is refused when configured so, else taken as a full backup saying why", async () => {
    const config = JSON.parse(readFileSync(configFile, "utf8"));
    const refusing = `${scratch.dir}/refusing.json`;
    writeFileSync(
      refusing,
      JSON.stringify({ ...config, backup: { ...config.backup, incremental: { whenNoBase: "refuse" } } }),
    );
    const refused = await incremental(refusing);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.output?.error?.name).toBe("NoIncrementalBase");
    expect(refused.output?.error?.message).toMatch(/no backup of this host's datadir is on record/);

    const run = await incremental();
    full = backupIdOf(run);
    expect(run.output?.result?.type).toBe("full");
    expect(run.output?.result?.fullInstead).toMatch(/no backup of this host's datadir is on record/);
    expect(full).toMatch(/-full-/);
  });

  it("full → writes → incremental → writes → incremental → writes: a restore after the second holds exactly what was committed by then", async () => {
    await writeSome(1);
    const one = await incremental();
    first = backupIdOf(one);
    expect(one.output?.result).toMatchObject({ type: "incremental", parentBackupId: full });
    await writeSome(2);
    second = backupIdOf(await incremental());
    await writeSome(3);
    expected = await digest(primary);
    pauseTime = new Date().toISOString();
    await sleep(2300);
    await writeSome(4);
    const pushed = await agent(["binlog-push", "--flush", "--config", configFile]);
    expect(pushed.exitCode, pushed.stderr.slice(-1500)).toBe(0);

    const config = JSON.parse(readFileSync(configFile, "utf8"));
    const fullManifest = await manifestOf(config, full);
    const firstManifest = await manifestOf(config, first);
    const secondManifest = await manifestOf(config, second);
    console.log(
      `stored bytes: full ${fullManifest.storedBytes}, incrementals ${firstManifest.storedBytes} and ${secondManifest.storedBytes}`,
    );
    expect(secondManifest).toMatchObject({ type: "incremental", parentBackupId: first });
    expect(secondManifest.lsn.fromLsn).toBe(firstManifest.lsn.toLsn);
    expect(firstManifest.storedBytes).toBeLessThan(fullManifest.storedBytes / 3);
    expect(secondManifest.storedBytes).toBeLessThan(fullManifest.storedBytes / 3);

    const listed = await listing();
    expect(listed.backups.map((b) => [b.backupId, b.parentBackupId ?? null, b.chain])).toEqual([
      [full, null, 0],
      [first, full, 1],
      [second, first, 2],
    ]);

    const verified = await agent(["verify", "--backup-id", second, "--config", configFile]);
    expect(verified.exitCode, verified.stderr.slice(-1500)).toBe(0);
    expect(verified.output?.result?.chain).toEqual([full, first, second]);

    const { server, targetConfig } = await restoreTarget("after-second", 711);
    const run = await agent([
      "restore",
      "--until",
      pauseTime,
      "--datadir",
      server.datadir,
      "--config",
      targetConfig,
    ]);
    expect(run.exitCode, run.stderr.slice(-3000)).toBe(0);
    expect(run.output?.result?.backupId).toBe(second);
    expect(run.output?.result?.chain).toEqual([full, first, second]);
    // Replay starts at the second incremental's exact position: a transaction replayed twice would
    // add a ledger row (it has no key) or stop the applier on a duplicate id.
    expect(await digest(server)).toBe(expected);
    const phases = ((run.output?.result?.phases ?? []) as { phase: string }[]).map((p) => p.phase);
    expect(phases).toEqual(["download", "extract", "prepare", "replay"]);
  });

  it("a table restore goes through the chain too, partially: only the table's files of each link, only its transactions", async () => {
    const run = await agent([
      "restore",
      "--tables",
      `${WORKLOAD_DB}.ledger`,
      "--until",
      pauseTime,
      "--as",
      "_back",
      "--config",
      configFile,
    ]);
    expect(run.exitCode, run.stderr.slice(-3000)).toBe(0);
    const result = run.output?.result as { partial: { used: boolean; reason?: string }; chain?: string[] };
    expect(result.partial, JSON.stringify(result.partial)).toMatchObject({ used: true });
    expect(result.chain).toEqual([full, first, second]);
    const ledgerAt = expected.split("\n").find((line) => line.startsWith("ledger "))!;
    const restoredLedger = await primary.query(
      `SELECT 'ledger', COUNT(*), MD5(GROUP_CONCAT(n ORDER BY n SEPARATOR ';')) FROM ${WORKLOAD_DB}.ledger_back`,
    );
    expect(restoredLedger[0]!.join(" ")).toBe(ledgerAt);
  });

  it("a missing incremental: a target that needs it is refused naming it, with the newest backup that restores", async () => {
    await s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint }).send(
      new DeleteObjectCommand({ Bucket: BUCKET, Key: backupManifestKey({ cluster: "orders" }, first) }),
    );
    const verified = await agent(["verify", "--backup-id", second, "--config", configFile]);
    expect(verified.exitCode).not.toBe(0);
    expect(verified.output?.error?.message).toContain(`its chain needs ${first}`);
    const { server, targetConfig } = await restoreTarget("missing-link", 712);
    const run = await agent([
      "restore",
      "--backup-id",
      second,
      "--datadir",
      server.datadir,
      "--no-start",
      "--config",
      targetConfig,
    ]);
    expect(run.exitCode).not.toBe(0);
    expect(run.output?.error?.name).toBe("RestorePlanRefused");
    expect(run.output?.error?.message).toContain(`its chain needs ${first}`);
    expect(run.output?.error?.message).toContain(`The newest backup that can be restored is ${full}`);

    // The next incremental of the primary cannot build on a broken chain: a full backup, saying why.
    const next = await incremental();
    expect(next.output?.result?.type).toBe("full");
    expect(next.output?.result?.fullInstead).toContain(first);
  });
});
