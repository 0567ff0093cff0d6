import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseBinlogInfo } from "../../core/binlog-coordinates.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { gtidSequence, loadDataset, WORKLOAD_DB, WriteWorkload } from "../../sandbox/hosts/workload.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";
import { manifestOf, restoreBackupInto, restoreToNewServer } from "./restore-helpers.js";

describe("full backup of a live MariaDB restores", () => {
  const scratch = scratchDir("backup-restore");
  let s3: S3Server;
  let source: MariaDbServer;
  let config: Record<string, unknown>;
  let configFile: string;
  const restored: MariaDbServer[] = [];

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    source = await MariaDbServer.start({ baseDir: `${scratch.dir}/source`, serverId: 101 });
    await loadDataset(source, { megabytes: 24 });
    ({ config, configFile } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: source,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-101",
    }));
  });

  const backUpInSmallSegments = () =>
    agent([
      "backup",
      "--type",
      "full",
      "--config",
      configFile,
      "--part-size-mib",
      "5",
      "--segment-size-mib",
      "5",
    ]);
  const restoreInto = (backupId: string, datadir: string) => restoreBackupInto(configFile, backupId, datadir);

  afterAll(async () => {
    for (const server of restored) await server.destroy();
    await source?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("a backup taken while a workload writes restores exactly the rows at its GTID", async () => {
    const workload = await WriteWorkload.start(source);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const run = await agent(["backup", "--type", "full", "--config", configFile]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lastWritten = await workload.stop();
    expect(run.exitCode, run.stderr).toBe(0);
    const backupId = backupIdOf(run);
    const manifest = await manifestOf(config, backupId);
    // The backup account has exactly the documented grants (core/privileges.ts): the table list
    // comes from the stream, which needs none.
    expect(manifest.tables).toEqual([`${WORKLOAD_DB}.dataset`, WriteWorkload.table]);

    const rowsAtBackup = gtidSequence(manifest.binlog.gtidSet, 101) - workload.gtidSeqBase;
    expect(rowsAtBackup).toBeGreaterThan(0);
    expect(lastWritten).toBeGreaterThan(rowsAtBackup);

    const { server, binlogInfo } = await restoreToNewServer(
      configFile,
      backupId,
      `${scratch.dir}/restore-1`,
      201,
    );
    restored.push(server);
    expect(parseBinlogInfo(binlogInfo)).toEqual(manifest.binlog);

    const [count, maxId, badPayloads] = (
      await server.query(
        `SELECT COUNT(*), MAX(id), SUM(payload <> SHA2(id, 256)) FROM ${WriteWorkload.table}`,
      )
    )[0]!;
    expect(Number(count)).toBe(rowsAtBackup);
    expect(Number(maxId)).toBe(rowsAtBackup);
    expect(Number(badPayloads)).toBe(0);

    // The source's table cut at the same row must checksum the same as the restored one.
    await source.query(
      `CREATE TABLE ${WORKLOAD_DB}.writes_at_backup LIKE ${WriteWorkload.table};
       INSERT INTO ${WORKLOAD_DB}.writes_at_backup SELECT * FROM ${WriteWorkload.table} WHERE id <= ${rowsAtBackup};`,
    );
    await server.query(`RENAME TABLE ${WriteWorkload.table} TO ${WORKLOAD_DB}.writes_at_backup`);
    const checksum = async (db: MariaDbServer, table: string) =>
      (await db.query(`CHECKSUM TABLE ${table}`))[0]![1];
    expect(await checksum(server, `${WORKLOAD_DB}.writes_at_backup`)).toBe(
      await checksum(source, `${WORKLOAD_DB}.writes_at_backup`),
    );
    expect(await checksum(server, `${WORKLOAD_DB}.dataset`)).toBe(
      await checksum(source, `${WORKLOAD_DB}.dataset`),
    );
  });

  it("a backup spread over several segment objects restores the same way", async () => {
    const run = await backUpInSmallSegments();
    expect(run.exitCode, run.stderr).toBe(0);
    const backupId = backupIdOf(run);
    const manifest = await manifestOf(config, backupId);
    expect(manifest.segments.length).toBeGreaterThan(1);
    expect(manifest.segments.map((segment) => segment.key)).toEqual(
      manifest.segments.map(
        (_, i) => `orders/backups/${manifest.backupId}/stream.${String(i).padStart(3, "0")}.enc`,
      ),
    );
    expect(manifest.segments.reduce((sum, segment) => sum + segment.size, 0)).toBe(manifest.storedBytes);

    const { server } = await restoreToNewServer(configFile, backupId, `${scratch.dir}/restore-2`, 202);
    restored.push(server);
    const checksum = async (db: MariaDbServer) =>
      (await db.query(`CHECKSUM TABLE ${WORKLOAD_DB}.dataset`))[0]![1];
    expect(await checksum(server)).toBe(await checksum(source));
  });

  it("restore refuses a non-empty datadir and leaves it untouched", async () => {
    const backupId = backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    const datadir = `${scratch.dir}/occupied`;
    mkdirSync(datadir);
    writeFileSync(`${datadir}/ibdata1`, "precious");
    const run = await restoreInto(backupId, datadir);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.name).toBe("TargetNotEmpty");
    expect(run.output?.error?.message).toMatch(/is not empty; nothing was touched/);
    expect(readdirSync(datadir)).toEqual(["ibdata1"]);
    expect(readFileSync(`${datadir}/ibdata1`, "utf8")).toBe("precious");
  });

  it("--move-aside keeps the old datadir beside the restored one, byte for byte", async () => {
    const backupId = backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    const datadir = `${scratch.dir}/replaced`;
    mkdirSync(datadir);
    writeFileSync(`${datadir}/ibdata1`, "the old server's data");
    const run = await restoreBackupInto(configFile, backupId, datadir, "--move-aside");
    expect(run.exitCode, run.stderr.slice(-1500)).toBe(0);
    const movedAside = run.output?.result?.movedAside as string;
    expect(movedAside).toMatch(new RegExp(`^${datadir}\\.rewind-\\d{8}T\\d{6}\\d{3}Z$`));
    expect(readFileSync(`${movedAside}/ibdata1`, "utf8")).toBe("the old server's data");
    expect(readdirSync(datadir)).toContain("xtrabackup_binlog_info");
  });

  it("a corrupted backup object stops the restore before any datadir exists", async () => {
    const backupId = backupIdOf(await backUpInSmallSegments());
    const manifest = await manifestOf(config, backupId);
    const object = s3.objectPath(BUCKET, manifest.segments.at(-1)!.key);
    const bytes = readFileSync(object);
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(object, bytes);
    const datadir = `${scratch.dir}/never-created`;
    const run = await restoreInto(backupId, datadir);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.name).toBe("VerifyFailed");
    expect(run.output?.error?.message).toMatch(
      /does not match its SHA-256 in the manifest; the stored backup is damaged/,
    );
    expect(existsSync(datadir)).toBe(false);
    expect(readdirSync(scratch.dir).filter((name) => name.includes("rewind-staging"))).toEqual([]);
  });

  it("the manifest records what DESIGN §3 asks for", async () => {
    const run = await agent(["backup", "--type", "full", "--config", configFile]);
    expect(run.exitCode, run.stderr).toBe(0);
    const manifest = await manifestOf(config, backupIdOf(run));
    expect(manifest).toMatchObject({
      cluster: "orders",
      type: "full",
      host: "db-101",
      engine: { name: "mariadb" },
      tool: { name: "mariabackup" },
      serverId: 101,
      binlogSource: "101-db-101",
      compression: { algorithm: "zstd" },
      encryption: { context: { cluster: "orders", backupId: manifest.backupId } },
    });
    expect(manifest.binlog.file).toMatch(/^mariadb-bin\.\d{6}$/);
    expect(manifest.binlog.gtidSet).toBe(await source.gtidBinlogPos());
    expect(BigInt(manifest.lsn.toLsn)).toBeGreaterThan(0n);
    expect(manifest.myCnf).toContain("server-id=101");
    expect(manifest.rawBytes).toBeGreaterThan(manifest.storedBytes);
  });
});
