import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backupManifestKey } from "../../core/layout.js";
import { s3Client } from "../../host-agent/clients.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent, startAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { run, waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Point-in-time restore of chosen tables into the live primary (issue 11), on a real primary and
 * GTID replica: the backup and binlogs restore into a scratch server, and only the chosen tables
 * come back, through the primary's binlog, while everything written since stays. Under row-based
 * logging (MySQL 8's default) and MariaDB's default, mixed.
 */
describe.each(["ROW", "MIXED"])(
  "restore --tables, binlog_format=%s: undo one mistake without losing the rest",
  (binlogFormat) => {
    const scratch = scratchDir(`tables-${binlogFormat.toLowerCase()}`);
    let s3: S3Server;
    let primary: MariaDbServer;
    let replica: MariaDbServer;
    let configFile: string;
    let workDir: string;
    let backupId: string;

    const checksum = async (server: MariaDbServer, table: string) =>
      (await server.query(`CHECKSUM TABLE ${table}`))[0]![1];
    const count = async (server: MariaDbServer, table: string) =>
      Number(await server.scalar(`SELECT COUNT(*) FROM ${table}`));
    const tables = async (server: MariaDbServer) =>
      (await server.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'"))
        .map((row) => String(row[0]))
        .sort();
    const caughtUp = () =>
      waitFor(
        "the replica to catch up",
        async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
      );
    const ship = async () => {
      const run = await agent(["binlog-push", "--flush", "--config", configFile]);
      expect(run.exitCode, run.stderr).toBe(0);
    };
    const restoreTables = (...args: string[]) =>
      agent(["restore", "--tables", ...args, "--config", configFile]);
    const event = (note: string) => primary.query(`INSERT INTO shop.events (note) VALUES ('${note}')`);

    beforeAll(async () => {
      s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
      const extraConfig = [`binlog_format=${binlogFormat}`];
      primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 701, extraConfig });
      replica = await MariaDbServer.start({ baseDir: `${scratch.dir}/replica`, serverId: 702, extraConfig });
      const repl = { user: "repl", password: "repl-password" };
      await primary.createUser(repl, "REPLICATION SLAVE");
      await replica.replicateFrom(primary, repl);
      await primary.query("CREATE DATABASE shop");
      await primary.query(
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40) NOT NULL, qty INT NOT NULL, KEY (item))",
      );
      await primary.query("CREATE TABLE shop.events (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(40))");
      await primary.query("CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40))");
      await primary.query(
        "CREATE TABLE shop.big (id INT PRIMARY KEY AUTO_INCREMENT, payload VARCHAR(200) NOT NULL)",
      );
      await primary.query(
        "CREATE TRIGGER shop.orders_audit AFTER INSERT ON shop.orders FOR EACH ROW SET @last = NEW.id",
      );
      await primary.query("CREATE VIEW shop.order_items AS SELECT item, qty FROM shop.orders");
      await primary.query("INSERT INTO shop.customers VALUES (1, 'ada'), (2, 'grace')");
      // A parent and a child whose rows a parent's delete removes by cascade (not in the binlog).
      await primary.query("CREATE TABLE shop.parent (id INT PRIMARY KEY)");
      await primary.query(
        "CREATE TABLE shop.child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES shop.parent (id) ON DELETE CASCADE)",
      );
      await primary.query("INSERT INTO shop.parent VALUES (1), (2)");
      await primary.query("INSERT INTO shop.child VALUES (10, 1), (11, 1), (20, 2)");
      // Written only before the backup, never again: only the backup knows it.
      await primary.query("CREATE TABLE shop.static (id INT PRIMARY KEY, v VARCHAR(20))");
      await primary.query("INSERT INTO shop.static VALUES (1, 'north'), (2, 'south'), (3, 'east')");
      await primary.query(
        "INSERT INTO shop.orders (item, qty) SELECT CONCAT('item-', seq), seq % 7 FROM seq_1_to_500",
        "shop",
      );
      await primary.query(
        "INSERT INTO shop.big (payload) SELECT REPEAT(MD5(seq), 6) FROM seq_1_to_200000",
        "shop",
      );
      ({ configFile } = await setUpLocalAgent({
        dir: `${scratch.dir}/agent`,
        server: primary,
        s3Endpoint: s3.endpoint,
        bucket: BUCKET,
        cluster: "orders",
        host: "db-701",
        // Small blocks, so a table restore of this small server fetches part of its backup.
        backup: { blockSizeMiB: 4 },
      }));
      workDir = JSON.parse(readFileSync(configFile, "utf8")).workDir;
      backupId = backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
      await primary.query(
        "INSERT INTO shop.orders (item, qty) SELECT CONCAT('late-', seq), seq % 5 FROM seq_1_to_200",
        "shop",
      );
      await event("before the drop");
    }, 300_000);

    afterAll(async () => {
      await replica?.destroy();
      await primary?.destroy();
      await s3?.stop();
      scratch.remove();
    });

    it("DROP TABLE: --replace brings the table back exactly as at the last good second, on the primary and the replica; later writes stay", async () => {
      const ordersBefore = await checksum(primary, "shop.orders");
      const customersBefore = await checksum(primary, "shop.customers");
      // The last good second is over; the mistake comes in the next one.
      const lastGood = Math.floor(Date.now() / 1000);
      await sleep(1100 - (Date.now() % 1000));
      await primary.query("DROP TABLE shop.orders");
      for (let i = 0; i < 20; i++) await event(`after the drop ${i}`);
      await ship();
      const eventsBefore = await count(primary, "shop.events");

      const run = await restoreTables(
        "shop.orders",
        "--until",
        new Date(lastGood * 1000).toISOString(),
        "--replace",
      );
      expect(run.exitCode, run.stderr).toBe(0);
      const [report] = run.output!.result!.tables as {
        table: string;
        restoredAs: string;
        previousKeptAs: string | null;
        rows: { scratch: number; live: number };
        checksum: { scratch: string; live: string };
        bytes: number;
        notRestored: { triggers: string[]; views: string[]; foreignKeys: string[] };
      }[];
      expect(report).toMatchObject({
        table: "shop.orders",
        restoredAs: "shop.orders",
        previousKeptAs: null,
        rows: { scratch: 700, live: 700 },
        checksum: { scratch: ordersBefore, live: ordersBefore },
      });
      expect(report!.bytes).toBeGreaterThan(700 * 10);
      // Partial: the scratch datadir got the system's files (the system tablespace with its undo,
      // the redo, the mysql schema) and shop.orders' own, not shop.big's 40 MB or any other
      // table's data: less than the whole backup, by at least shop.big.
      const partial = run.output!.result!.partial as {
        used: boolean;
        extractedBytes: number;
        skippedBytes: number;
        notFetchedBytes: number;
        fetchedStoredBytes: number;
        storedBytes: number;
        skippedTransactions: number;
        replayedTransactions: number;
      };
      console.log(
        `partial table restore (${binlogFormat}): extracted ${Math.round(partial.extractedBytes / 1024)} KiB, skipped ${Math.round(partial.skippedBytes / 1024)} KiB (${Math.round(partial.notFetchedBytes / 1024)} KiB never fetched); fetched ${Math.round(partial.fetchedStoredBytes / 1024)} of ${Math.round(partial.storedBytes / 1024)} KiB stored; replayed ${partial.replayedTransactions} transactions, skipped ${partial.skippedTransactions} on other tables`,
      );
      expect(partial.used).toBe(true);
      // Only the blocks holding the system's files and shop.orders' were fetched, not shop.big's
      // (whose repeated payloads compress to almost nothing, so it shows in the raw bytes).
      expect(partial.notFetchedBytes).toBeGreaterThan(30 * 1024 * 1024);
      expect(partial.fetchedStoredBytes).toBeLessThan(partial.storedBytes);
      // The shop.events inserts after the backup are row events on another table under ROW: left
      // out before the applier; under MIXED they are statements, which the applier's own filter
      // skips.
      if (binlogFormat === "ROW") expect(partial.skippedTransactions).toBeGreaterThanOrEqual(1);
      expect(partial.replayedTransactions).toBeGreaterThanOrEqual(1);
      expect(partial.skippedBytes).toBeGreaterThan(30 * 1024 * 1024);
      const backupBytes = partial.extractedBytes + partial.skippedBytes;
      expect(partial.extractedBytes).toBeLessThan(backupBytes - 30 * 1024 * 1024);
      expect(report!.notRestored.triggers).toEqual(["orders_audit"]);
      expect(report!.notRestored.views).toEqual(["shop.order_items"]);

      expect(await checksum(primary, "shop.orders")).toBe(ordersBefore);
      expect(await count(primary, "shop.events")).toBe(eventsBefore);
      expect(await checksum(primary, "shop.customers")).toBe(customersBefore);
      await caughtUp();
      expect(await checksum(replica, "shop.orders")).toBe(ordersBefore);
      expect(await count(replica, "shop.events")).toBe(eventsBefore);
      expect(await tables(primary)).toEqual([
        "big",
        "child",
        "customers",
        "events",
        "order_items",
        "orders",
        "parent",
        "static",
      ]);
      expect(readdirSync(workDir).filter((name) => name.startsWith("tables-"))).toEqual([]);
    }, 300_000);

    it("DELETE without WHERE: --as restores the rows as of the GTID before it beside the live table, which stays untouched", async () => {
      const before = await checksum(primary, "shop.orders");
      const gtidBefore = await primary.gtidBinlogPos();
      await primary.query("DELETE FROM shop.orders");
      await event("after the delete");
      await ship();
      const run = await restoreTables("shop.orders", "--until", gtidBefore, "--as", "_undo");
      expect(run.exitCode, run.stderr).toBe(0);
      expect(await checksum(primary, "shop.orders_undo")).toBe(before);
      expect(await count(primary, "shop.orders_undo")).toBe(700);
      expect(await count(primary, "shop.orders")).toBe(0);
      await caughtUp();
      expect(await checksum(replica, "shop.orders_undo")).toBe(before);
      // A second run with the same suffix is refused before anything is fetched.
      const again = await restoreTables("shop.orders", "--until", gtidBefore, "--as", "_undo");
      expect(again.exitCode).toBe(2);
      expect(again.output?.error).toMatchObject({
        name: "UsageError",
        message: expect.stringContaining("shop.orders_undo already exists on the live server"),
      });
      // --replace swaps the restored rows in and keeps the emptied table beside them.
      const replaced = await restoreTables("shop.orders", "--until", gtidBefore, "--replace");
      expect(replaced.exitCode, replaced.stderr).toBe(0);
      const [report] = replaced.output!.result!.tables as { restoredAs: string; previousKeptAs: string }[];
      expect(report!.restoredAs).toBe("shop.orders");
      expect(report!.previousKeptAs).toMatch(/^shop\.orders_before_\d{8}T\d{6}$/);
      expect(await checksum(primary, "shop.orders")).toBe(before);
      expect(await count(primary, report!.previousKeptAs)).toBe(0);
      await caughtUp();
      expect(await checksum(replica, "shop.orders")).toBe(before);
      expect(await count(replica, report!.previousKeptAs)).toBe(0);
    }, 300_000);

    it("where a partial copy cannot be made (the client replay, which cannot skip other tables), the whole backup is restored and the report says why", async () => {
      const before = await checksum(primary, "shop.customers");
      const gtid = await primary.gtidBinlogPos();
      await primary.query("UPDATE shop.customers SET name = 'changed'");
      await ship();
      const run = await restoreTables(
        "shop.customers",
        "--until",
        gtid,
        "--as",
        "_whole",
        "--replay",
        "client",
      );
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.output!.result!.partial).toEqual({
        used: false,
        reason: expect.stringContaining("client replay"),
      });
      expect(await checksum(primary, "shop.customers_whole")).toBe(before);
    }, 300_000);

    it("a child table whose rows a parent's delete cascaded away: a partial copy would keep them, so the whole backup is restored, exactly", async () => {
      await primary.query("DELETE FROM shop.parent WHERE id = 1");
      expect(await count(primary, "shop.child")).toBe(1);
      const gtid = await primary.gtidBinlogPos();
      const before = await checksum(primary, "shop.child");
      await primary.query("DELETE FROM shop.child");
      await ship();
      const run = await restoreTables("shop.child", "--until", gtid, "--as", "_fk");
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.output!.result!.partial).toEqual({
        used: false,
        reason: expect.stringContaining(
          "foreign keys join a chosen table to one that is not (shop.child → shop.parent)",
        ),
      });
      expect(await checksum(primary, "shop.child_fk")).toBe(before);
      expect(await count(primary, "shop.child_fk")).toBe(1);
    }, 300_000);

    async function interruptedCopy(interrupt: (agentPid: number, connectionId: string) => Promise<void>) {
      const gtid = await primary.gtidBinlogPos();
      await ship();
      const shape = await tables(primary);
      const sums = await Promise.all(
        shape.filter((t) => t !== "order_items").map((t) => checksum(primary, `shop.${t}`)),
      );
      const { child, done } = startAgent(AGENT_BUNDLE, [
        "restore",
        "--tables",
        "shop.big",
        "--until",
        gtid,
        "--as",
        "_copy",
        "--config",
        configFile,
      ]);
      let connection: string | undefined;
      await waitFor(
        "the copy to reach the primary",
        async () => {
          const [row] = await primary.query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO `rewind_stage%' LIMIT 1",
          );
          connection = row?.[0] ?? undefined;
          return connection !== undefined || child.exitCode !== null;
        },
        { timeoutMs: 240_000, intervalMs: 10 },
      );
      expect(connection, "the copy finished before it could be interrupted").toBeDefined();
      await interrupt(child.pid!, connection!);
      const result = await done;
      // The stage was temporary: it went with its session, and nothing else changed.
      await waitFor("the interrupted session to end", async () => {
        const [row] = await primary.query(
          `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ${connection}`,
        );
        return row?.[0] === "0";
      });
      expect(await tables(primary)).toEqual(shape);
      expect(
        await Promise.all(
          shape.filter((t) => t !== "order_items").map((t) => checksum(primary, `shop.${t}`)),
        ),
      ).toEqual(sums);
      return result;
    }

    it("the primary refusing the copy mid-way (its session killed): the run fails, the live server holds what it held", async () => {
      const result = await interruptedCopy(async (_pid, connection) => {
        await primary.query(`KILL ${connection}`);
      });
      expect(result.exitCode).toBe(1);
      expect(result.output?.error?.name).toBe("SqlFailed");
      expect(readdirSync(workDir).filter((name) => name.startsWith("tables-"))).toEqual([]);
    }, 300_000);

    it("the agent killed mid-copy: no partial table is left on the live server", async () => {
      const result = await interruptedCopy(async (pid) => {
        process.kill(pid, "SIGKILL");
      });
      expect(result.signal).toBe("SIGKILL");
      // Its scratch server stops with it (nothing holds the scratch datadir); the next restore
      // removes what it left in workDir.
      await waitFor("the killed agent's scratch server to stop", async () => {
        const { stdout } = await run("ps", ["-eo", "args"]);
        return !stdout.includes(workDir);
      });
    }, 300_000);

    it("a table created after the backup is found in the binlogs and restored", async () => {
      await primary.query("CREATE TABLE shop.fresh (id INT PRIMARY KEY, v VARCHAR(10))");
      await primary.query("INSERT INTO shop.fresh VALUES (1, 'a'), (2, 'b'), (3, 'c')");
      const gtid = await primary.gtidBinlogPos();
      const before = await checksum(primary, "shop.fresh");
      await ship();
      const run = await restoreTables("shop.fresh", "--until", gtid, "--as", "_copy");
      expect(run.exitCode, run.stderr).toBe(0);
      expect(await checksum(primary, "shop.fresh_copy")).toBe(before);
    }, 300_000);

    it("a table written only before the backup restores with --as, and with --replace to the second before a DROP that a rotation separates from the target", async () => {
      const before = await checksum(primary, "shop.static");
      await primary.query("FLUSH BINARY LOGS");
      await event("after a rotation");
      const gtid = await primary.gtidBinlogPos();
      await ship();
      const copy = await restoreTables("shop.static", "--until", gtid, "--as", "_s");
      expect(copy.exitCode, copy.stderr).toBe(0);
      expect(await checksum(primary, "shop.static_s")).toBe(before);

      // The binlogs up to the target end before the rotation, so none of them names the table.
      const lastGood = Math.floor(Date.now() / 1000);
      await sleep(1100 - (Date.now() % 1000));
      await primary.query("FLUSH BINARY LOGS");
      await primary.query("DROP TABLE shop.static");
      await event("after the static drop");
      await ship();
      const back = await restoreTables(
        "shop.static",
        "--until",
        new Date(lastGood * 1000).toISOString(),
        "--replace",
      );
      expect(back.exitCode, back.stderr).toBe(0);
      expect(await checksum(primary, "shop.static")).toBe(before);
      await caughtUp();
      expect(await checksum(replica, "shop.static")).toBe(before);
    }, 300_000);

    it("a backup whose manifest records no table list (an older agent's) is checked against its own files, and says so", async () => {
      const client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
      const key = backupManifestKey({ cluster: "orders" }, backupId);
      const original = await (
        await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
      ).Body!.transformToString();
      const put = (body: string) =>
        client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
      await put(JSON.stringify({ ...JSON.parse(original), tables: [] }));
      try {
        const gtid = await primary.gtidBinlogPos();
        await ship();
        const missing = await restoreTables("shop.nope", "--until", gtid);
        expect(missing.exitCode).toBe(2);
        expect(missing.stderr).toContain("records no table list");
        expect(missing.output?.error?.message).toContain(
          "shop.nope did not exist at the target point in time",
        );
        expect(missing.output?.error?.message).toContain("downloaded to read its table list");
        const before = await checksum(primary, "shop.customers");
        const copy = await restoreTables("shop.customers", "--until", gtid, "--as", "_old");
        expect(copy.exitCode, copy.stderr).toBe(0);
        expect(await checksum(primary, "shop.customers_old")).toBe(before);
      } finally {
        await put(original);
      }
    }, 300_000);

    it("bad input is refused naming the problem: a table that did not exist, too little scratch space, a replica", async () => {
      const gtid = await primary.gtidBinlogPos();
      await ship();
      const missing = await restoreTables("shop.nope", "--until", gtid);
      expect(missing.exitCode).toBe(2);
      expect(missing.output?.error?.message).toContain("shop.nope did not exist at the target point in time");
      // Refused from the backup's table list and the binlogs, before the backup was downloaded.
      expect(missing.output?.error?.message).toContain("nothing was downloaded but the binlogs");

      const tight = `${scratch.dir}/agent/tight.json`;
      writeFileSync(
        tight,
        JSON.stringify({ ...JSON.parse(readFileSync(configFile, "utf8")), minFreeMiB: 1024 ** 3 }),
      );
      const space = await agent(["restore", "--tables", "shop.orders", "--until", gtid, "--config", tight]);
      expect(space.exitCode).toBe(1);
      expect(space.output?.error).toMatchObject({
        name: "InsufficientSpace",
        message: expect.stringMatching(/the scratch restore needs \d+ MiB in .* but \d+ MiB are free/),
      });

      const onReplica = `${scratch.dir}/agent/replica.json`;
      writeFileSync(
        onReplica,
        JSON.stringify({
          ...JSON.parse(readFileSync(configFile, "utf8")),
          connection: { socket: replica.socket },
        }),
      );
      const wrongHost = await agent([
        "restore",
        "--tables",
        "shop.orders",
        "--until",
        gtid,
        "--config",
        onReplica,
      ]);
      expect(wrongHost.exitCode).toBe(1);
      expect(wrongHost.output?.error?.message).toContain("this host's server is a replica");

      const badName = await restoreTables("shop.orders;drop", "--until", gtid);
      expect(badName.output?.error).toMatchObject({
        name: "UsageError",
        message: expect.stringContaining("is not db.table or db.*"),
      });
      expect(readdirSync(workDir).filter((name) => /^(restore|tables)-/.test(name))).toEqual([]);
    }, 300_000);

    // Last: from here on every binlog up to a target holds a foreign key's DDL.
    it("a foreign key made after the backup, whose cascade then removed rows: the binlogs say so, and the whole backup is restored, exactly", async () => {
      await primary.query("CREATE TABLE shop.team (id INT PRIMARY KEY)");
      await primary.query(
        "CREATE TABLE shop.member (id INT PRIMARY KEY, team_id INT, FOREIGN KEY (team_id) REFERENCES shop.team (id) ON DELETE CASCADE)",
      );
      await primary.query("INSERT INTO shop.team VALUES (1), (2)");
      await primary.query("INSERT INTO shop.member VALUES (1, 1), (2, 1), (3, 2)");
      await primary.query("DELETE FROM shop.team WHERE id = 2");
      const gtid = await primary.gtidBinlogPos();
      const before = await checksum(primary, "shop.member");
      await ship();
      const run = await restoreTables("shop.member", "--until", gtid, "--as", "_fk2");
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.output!.result!.partial).toEqual({
        used: false,
        reason: expect.stringContaining("the binlogs up to the target change foreign keys or triggers"),
      });
      expect(await checksum(primary, "shop.member_fk2")).toBe(before);
      expect(await count(primary, "shop.member_fk2")).toBe(2);
    }, 300_000);
  },
);
