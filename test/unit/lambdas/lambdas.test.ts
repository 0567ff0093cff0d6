import {
  DeleteObjectsCommand,
  type DeleteObjectsCommandInput,
  GetObjectAttributesCommand,
  GetObjectCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backupManifestKey } from "../../../core/layout.js";
import { StoredRestorePlan } from "../../../core/store/planned-restore.js";
import { askHostStatus, clusterInstances } from "../../../lambdas/lib/host-status.js";
import { parseInput, RestoreInput } from "../../../lambdas/lib/inputs.js";
import { publishOutcome } from "../../../lambdas/lib/notify.js";
import { planClusterRestore } from "../../../lambdas/lib/plan-restore.js";
import { applyRetention } from "../../../lambdas/lib/retention.js";
import type { ClusterSettings } from "../../../lambdas/lib/settings.js";
import { chooseSource, type HostStatus } from "../../../lambdas/lib/source-policy.js";
import { verifyBackup } from "../../../lambdas/lib/verify-backup.js";
import {
  BUCKET,
  binlogFile,
  CLUSTER,
  fakeBucket,
  putBackup,
  putBinlog,
  putChunk,
  SOURCE,
} from "./fake-bucket.js";

let bucket: ReturnType<typeof fakeBucket>;
beforeEach(() => {
  bucket = fakeBucket();
});
afterEach(() => bucket.s3.restore());

const days = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("verify", () => {
  it("checks every link of an incremental's chain, and refuses a chain with a link missing", async () => {
    const full = putBackup(bucket.objects, 3);
    const first = putBackup(bucket.objects, 3, { parent: full, hour: 6 });
    const second = putBackup(bucket.objects, 3, { parent: first, hour: 9 });
    const report = await verifyBackup(bucket.client, BUCKET, {
      cluster: CLUSTER,
      backupId: second.backupId,
      binlogs: [],
    });
    expect(report).toMatchObject({
      segments: 3,
      chain: [full.backupId, first.backupId, second.backupId],
      verified: true,
    });
    const checked = bucket.s3.commandCalls(GetObjectAttributesCommand).map((call) => call.args[0].input.Key);
    expect(checked).toEqual([full, first, second].map((b) => b.segments[0]!.key));
    bucket.objects.delete(backupManifestKey({ cluster: CLUSTER }, first.backupId));
    await expect(
      verifyBackup(bucket.client, BUCKET, { cluster: CLUSTER, backupId: second.backupId, binlogs: [] }),
    ).rejects.toThrow(new RegExp(`its chain needs ${first.backupId}`));
  });

  it("passes a backup whose objects match the manifest, asking S3 for sizes and part checksums", async () => {
    const backup = putBackup(bucket.objects, 3);
    const report = await verifyBackup(bucket.client, BUCKET, {
      cluster: CLUSTER,
      backupId: backup.backupId,
      binlogs: [],
    });
    expect(report).toMatchObject({ backupId: backup.backupId, segments: 1, verified: true });
    expect(bucket.s3.commandCalls(GetObjectAttributesCommand)[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: backup.segments[0]!.key,
      ObjectAttributes: ["ObjectSize", "ObjectParts", "Checksum"],
      MaxParts: 10_000,
    });
  });

  it("fails with VerifyFailed naming the object when a size or a part checksum differs", async () => {
    const backup = putBackup(bucket.objects, 3);
    const stored = bucket.objects.get(backup.segments[0]!.key)!;
    stored.size -= 1;
    const input = { cluster: CLUSTER, backupId: backup.backupId, binlogs: [] };
    await expect(verifyBackup(bucket.client, BUCKET, input)).rejects.toMatchObject({
      name: "VerifyFailed",
      message: expect.stringContaining(
        `${backup.segments[0]!.key}: size ${backup.segments[0]!.size - 1} in S3`,
      ),
    });
    stored.size += 1;
    stored.parts = stored.parts!.map((part, i) =>
      i === 1 ? { ...part, checksumSha256: Buffer.alloc(32).toString("base64") } : part,
    );
    await expect(verifyBackup(bucket.client, BUCKET, input)).rejects.toMatchObject({
      name: "VerifyFailed",
      message: expect.stringContaining("part 2: checksum differs from the manifest"),
    });
  });

  it("checks a plan's binlogs too, and names a missing one", async () => {
    const backup = putBackup(bucket.objects, 3);
    putBinlog(bucket.objects, 3);
    const binlogs = [
      { source: SOURCE, file: binlogFile(3) },
      { source: SOURCE, file: binlogFile(4) },
    ];
    await expect(
      verifyBackup(bucket.client, BUCKET, {
        cluster: CLUSTER,
        backupId: backup.backupId,
        binlogs,
      }),
    ).rejects.toThrow(`${binlogFile(4)}: its manifest is missing`);
  });

  it("says a backup without a manifest does not exist or never completed", async () => {
    const backup = putBackup(bucket.objects, 3);
    bucket.objects.delete(backupManifestKey({ cluster: CLUSTER }, backup.backupId));
    await expect(
      verifyBackup(bucket.client, BUCKET, {
        cluster: CLUSTER,
        backupId: backup.backupId,
        binlogs: [],
      }),
    ).rejects.toMatchObject({ name: "BackupNotFound" });
  });
});

describe("plan-restore", () => {
  const input = (fields: Record<string, unknown>) =>
    parseInput(
      RestoreInput,
      { cluster: CLUSTER, targetInstanceId: "i-0abc1234def567890", ...fields },
      "Restore",
    );

  it("takes a GTID of either engine and a time to the microsecond; refuses anything else naming both syntaxes", () => {
    expect(input({ gtid: "0-1-1042" }).gtid).toBe("0-1-1042");
    expect(input({ gtid: "396e294c-1ca4-11f1-9ae7-00155da79c6b:5" }).gtid).toBe(
      "396e294c-1ca4-11f1-9ae7-00155da79c6b:5",
    );
    expect(input({ gtid: "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3" }).gtid).toBeDefined();
    expect(input({ pointInTime: "2026-03-10T17:11:54.483587Z" }).pointInTime).toBeDefined();
    expect(() => input({ gtid: "1042" })).toThrow(
      /gtid: a GTID: on MariaDB domain-server-sequence such as 0-1-1042, on MySQL uuid:N/,
    );
  });

  it("reads the manifests of the newest backups only, back to the one that serves the target, however many are kept", async () => {
    for (const d of days(1, 20)) putBackup(bucket.objects, d);
    for (const n of days(1, 21)) putBinlog(bucket.objects, n);
    const manifestReads = () =>
      bucket.s3
        .commandCalls(GetObjectCommand)
        .filter((call) => /\/backups\/[^/]+\/manifest\.json$/.test(call.args[0].input.Key!)).length;
    await planClusterRestore(bucket.client, BUCKET, input({ latest: true }), "exec-latest");
    expect(manifestReads()).toBe(1);
    bucket.s3.resetHistory();
    const planned = await planClusterRestore(
      bucket.client,
      BUCKET,
      input({ pointInTime: "2026-11-17T12:00:00Z" }),
      "exec-time",
    );
    // Days 20, 19, 18 end after the target; day 17's is the one.
    expect(planned.backupId).toBe("20261117T033000Z-full-db1");
    expect(manifestReads()).toBe(4);
  });

  it("plans through an incremental chain (a drill's latest point too), recording every link it verified", async () => {
    for (const d of days(1, 4)) putBackup(bucket.objects, d);
    const full = putBackup(bucket.objects, 5);
    const first = putBackup(bucket.objects, 5, { parent: full, hour: 6 });
    const second = putBackup(bucket.objects, 5, { parent: first, hour: 9 });
    for (const n of days(1, 6)) putBinlog(bucket.objects, n);
    for (const fields of [{ pointInTime: "2026-11-05T12:00:00Z" }, { latest: true, mode: "scratch" }]) {
      const planned = await planClusterRestore(bucket.client, BUCKET, input(fields), "exec-chain");
      expect(planned.backupId).toBe(second.backupId);
      expect(planned.chain).toEqual([
        { backupId: full.backupId, storedSha256: full.storedSha256 },
        { backupId: first.backupId, storedSha256: first.storedSha256 },
      ]);
      expect(planned.binlogs[0]).toMatchObject({ file: binlogFile(5), startPosition: 900 });
    }
    // Between the links: the first incremental, replaying from its position.
    const between = await planClusterRestore(
      bucket.client,
      BUCKET,
      input({ pointInTime: "2026-11-05T07:00:00Z" }),
      "exec-between",
    );
    expect(between.backupId).toBe(first.backupId);
    expect(between.chain).toEqual([{ backupId: full.backupId, storedSha256: full.storedSha256 }]);
    expect(between.binlogs[0]).toMatchObject({ startPosition: 600 });
  });

  it("picks the newest backup before the target and the binlogs from its position, and stores the plan", async () => {
    for (const d of days(1, 5)) putBackup(bucket.objects, d);
    for (const n of days(1, 6)) putBinlog(bucket.objects, n);
    const planned = await planClusterRestore(
      bucket.client,
      BUCKET,
      input({ pointInTime: "2026-11-05T12:00:00Z" }),
      "exec-1",
    );
    expect(planned).toMatchObject({
      backupId: "20261105T033000Z-full-db1",
      binlogs: [{ source: SOURCE, file: binlogFile(5) }],
      planUri: `s3://${BUCKET}/orders/restores/exec-1/plan.json`,
      mode: "replace",
      datadir: "/var/lib/mysql",
      promote: false,
    });
    const put = bucket.s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put.Key).toBe("orders/restores/exec-1/plan.json");
    const stored = JSON.parse(String(put.Body));
    expect(stored.target).toEqual({ kind: "time", time: "2026-11-05T12:00:00.000Z" });
    // The plan is the agent's one source of how to restore it: it parses with core's schema.
    expect(StoredRestorePlan.parse(stored)).toMatchObject({
      mode: "replace",
      datadir: "/var/lib/mysql",
      replicaOf: "",
    });
  });

  it("plans a table restore: the tables ride in the plan, with the scratch space the host needs", async () => {
    for (const d of days(1, 5)) putBackup(bucket.objects, d);
    for (const n of days(1, 6)) putBinlog(bucket.objects, n);
    const planned = await planClusterRestore(
      bucket.client,
      BUCKET,
      input({
        pointInTime: "2026-11-05T12:00:00Z",
        mode: "tables",
        tables: ["shop.orders", "crm.*"],
        as: "_undo",
      }),
      "tables-1",
    );
    expect(planned).toMatchObject({
      mode: "tables",
      datadir: "",
      tables: { tables: ["shop.orders", "crm.*"], as: "_undo", replace: false },
    });
    const backup = JSON.parse(
      bucket.objects.get("orders/backups/20261105T033000Z-full-db1/manifest.json")!.body.toString(),
    );
    expect(planned.scratchBytes).toBe(backup.rawBytes + 4000);
    const stored = JSON.parse(String(bucket.s3.commandCalls(PutObjectCommand)[0]!.args[0].input.Body));
    expect(stored.tables).toEqual(planned.tables);
  });

  it("refuses table-restore input that cannot work, naming the field", () => {
    expect(() => input({ pointInTime: "2026-11-05T12:00:00Z", mode: "tables" })).toThrow(
      /tables: mode "tables" needs "tables"/,
    );
    expect(() => input({ pointInTime: "2026-11-05T12:00:00Z", tables: ["shop.orders"] })).toThrow(
      /mode: "tables", "as" and "replace" belong to mode "tables"/,
    );
    expect(() =>
      input({
        pointInTime: "2026-11-05T12:00:00Z",
        mode: "tables",
        tables: ["shop.orders"],
        as: "_x",
        replace: true,
      }),
    ).toThrow(/as: give "as" .* or "replace" .*, not both/);
    expect(() =>
      input({ pointInTime: "2026-11-05T12:00:00Z", mode: "tables", tables: ["orders; DROP"] }),
    ).toThrow(/tables.0: db.table or db.\*, such as shop.orders/);
  });

  it("plans the newest shipped point for latest (drills)", async () => {
    for (const d of days(1, 3)) putBackup(bucket.objects, d);
    for (const n of days(1, 4)) putBinlog(bucket.objects, n);
    const planned = await planClusterRestore(
      bucket.client,
      BUCKET,
      input({ latest: true, mode: "scratch", datadir: "/var/tmp/rewind/drill" }),
      "drill-1",
    );
    expect(planned.target).toEqual({ kind: "gtid", gtid: "0-1-50" });
    expect(planned.binlogs.map((binlog) => binlog.file)).toEqual([binlogFile(3), binlogFile(4)]);
    expect(planned.mode).toBe("scratch");
  });

  it("refuses a target past a gap, names the missing file, and stores no plan", async () => {
    for (const d of days(1, 3)) putBackup(bucket.objects, d);
    for (const n of [1, 2, 3, 5, 6]) putBinlog(bucket.objects, n);
    await expect(
      planClusterRestore(bucket.client, BUCKET, input({ pointInTime: "2026-11-05T12:00:00Z" }), "x"),
    ).rejects.toMatchObject({ name: "RestorePlanRefused", message: expect.stringContaining("gap") });
    expect(bucket.s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });
});

describe("retention", () => {
  const now = new Date("2026-11-20T12:00:00Z");

  it("deletes backups outside the window (manifest first) and binlogs no kept backup needs", async () => {
    for (const d of days(1, 20)) putBackup(bucket.objects, d);
    for (const n of days(1, 20)) putBinlog(bucket.objects, n);
    const report = await applyRetention(bucket.client, BUCKET, CLUSTER, { fullBackups: 3, pitrDays: 7 }, now);
    expect(report.refused).toBeNull();
    expect(report.deletedBackups).toHaveLength(12);
    expect(report.keptBackups[0]).toBe("20261113T033000Z-full-db1");
    const deletes = bucket.s3
      .commandCalls(DeleteObjectsCommand)
      .map((call) => call.args[0].input.Delete!.Objects!);
    // A backup loses its manifest before its segments: never a complete-looking backup with holes.
    expect(deletes[0]!.map((o) => o.Key)).toEqual(["orders/backups/20261101T033000Z-full-db1/manifest.json"]);
    expect(deletes[1]!.map((o) => o.Key)).toEqual([
      "orders/backups/20261101T033000Z-full-db1/stream.000.enc",
    ]);
    // Every delete names a version: on a versioned bucket a delete without one only writes a marker.
    expect(deletes.flat().every((object) => object.VersionId !== undefined)).toBe(true);
    expect([...bucket.objects.keys()].filter((key) => key.includes(binlogFile(12)))).toEqual([]);
    expect([...bucket.objects.keys()].filter((key) => key.includes(binlogFile(13)))).toHaveLength(2);
  });

  it("keeps what Object Lock still protects, whole, for a later run", async () => {
    for (const d of days(1, 20)) putBackup(bucket.objects, d);
    for (const n of days(1, 20)) putBinlog(bucket.objects, n);
    // The manifest of the oldest backup is still locked, as S3 answers for a locked version.
    const lockedKey = "orders/backups/20261101T033000Z-full-db1/manifest.json";
    bucket.s3.on(DeleteObjectsCommand).callsFake((input: DeleteObjectsCommandInput) => {
      const objects = input.Delete?.Objects ?? [];
      const refused = objects.filter((object) => object.Key === lockedKey);
      for (const { Key } of objects) if (Key !== lockedKey) bucket.objects.delete(Key!);
      return {
        Errors: refused.map((object) => ({
          Key: object.Key,
          VersionId: object.VersionId,
          Code: "AccessDenied",
          Message: "Access Denied because object protected by object lock.",
        })),
      };
    });
    const report = await applyRetention(bucket.client, BUCKET, CLUSTER, { fullBackups: 3, pitrDays: 7 }, now);
    expect(report.refused).toBeNull();
    expect(report.heldByLock).toBe(1);
    expect(report.deletedBackups).toHaveLength(11);
    expect(report.deletedBackups).not.toContain("20261101T033000Z-full-db1");
    // Its segments were not touched: it stays a complete backup until its manifest can go first.
    expect(bucket.objects.has("orders/backups/20261101T033000Z-full-db1/stream.000.enc")).toBe(true);
    expect(report.notes.join(" ")).toMatch(/1 object\(s\) are still under Object Lock/);
  });

  it("deletes superseded chunks after a day, and a lost host's chunked file once the oldest kept backup is past it", async () => {
    for (const d of days(15, 20)) putBackup(bucket.objects, d);
    for (const n of days(15, 20)) putBinlog(bucket.objects, n);
    const chunked = (source: string, file: string, before: string, added: string, shippedAt: string) => {
      for (const chunk of [0, 1]) putChunk(bucket.objects, { source, file, chunk, before, added, shippedAt });
    };
    // Files 17 and 19 were streamed as chunks, then shipped whole: 17 two days ago, 19 hours ago.
    chunked(SOURCE, binlogFile(17), "0-1-170", "0-1-180", "2026-11-18T03:00:00.000Z");
    chunked(SOURCE, binlogFile(19), "0-1-190", "0-1-200", "2026-11-20T03:00:00.000Z");
    // A host lost while writing: one file entirely before the oldest kept backup (0-1-153), one after.
    chunked("9-db9", binlogFile(3), "0-1-90", "0-1-100", "2026-11-10T00:00:00.000Z");
    chunked("9-db9", binlogFile(4), "0-1-160", "0-1-175", "2026-11-17T00:00:00.000Z");
    const report = await applyRetention(
      bucket.client,
      BUCKET,
      CLUSTER,
      { fullBackups: 10, pitrDays: 7 },
      now,
    );
    expect(report.refused).toBeNull();
    expect(report.deletedBinlogs).toEqual([`9-db9/${binlogFile(3)}`]);
    const chunkFiles = [...bucket.objects.keys()]
      .filter((key) => key.includes("/chunks/"))
      .map((key) => key.replace(/\/\d{12}-\d{12}\.chunk$/, ""));
    expect([...new Set(chunkFiles)].sort()).toEqual([
      `orders/binlogs/${SOURCE}/chunks/${binlogFile(19)}`,
      `orders/binlogs/9-db9/chunks/${binlogFile(4)}`,
    ]);
    // One object a chunk: two chunks each of file 17 and of the lost host's file 3.
    expect(report.deletedObjects).toBe(4);
  });

  it("removes an interrupted backup's objects (hosts may not) once no agent can still be writing it", async () => {
    for (const d of days(15, 20)) putBackup(bucket.objects, d);
    for (const n of days(15, 20)) putBinlog(bucket.objects, n);
    // Segments without a manifest: one from three days ago, one started an hour ago (may still run).
    bucket.objects.set("orders/backups/20261117T120000Z-full-db2/stream.000.enc", { body: "", size: 1 });
    bucket.objects.set("orders/backups/20261117T120000Z-full-db2/stream.001.enc", { body: "", size: 1 });
    bucket.objects.set("orders/backups/20261120T110000Z-full-db2/stream.000.enc", { body: "", size: 1 });
    const report = await applyRetention(
      bucket.client,
      BUCKET,
      CLUSTER,
      { fullBackups: 10, pitrDays: 30 },
      now,
    );
    expect(report).toMatchObject({ deletedBackups: [], deletedIncomplete: ["20261117T120000Z-full-db2"] });
    expect([...bucket.objects.keys()].filter((key) => key.includes("-full-db2/"))).toEqual([
      "orders/backups/20261120T110000Z-full-db2/stream.000.enc",
    ]);
  });

  it("deletes nothing across a gap in the retained window and says why", async () => {
    for (const d of days(1, 20)) putBackup(bucket.objects, d);
    for (const n of days(1, 20).filter((n) => n !== 16)) putBinlog(bucket.objects, n);
    const report = await applyRetention(bucket.client, BUCKET, CLUSTER, { fullBackups: 3, pitrDays: 7 }, now);
    expect(report.refused).toMatch(/gap after 1-db1\/mariadb-bin.000015/);
    expect(report.deletedObjects).toBe(0);
    expect(bucket.s3.commandCalls(DeleteObjectsCommand)).toHaveLength(0);
  });

  it("never deletes the only full backup", async () => {
    putBackup(bucket.objects, 1);
    putBinlog(bucket.objects, 1);
    const report = await applyRetention(bucket.client, BUCKET, CLUSTER, { fullBackups: 1, pitrDays: 1 }, now);
    expect(report.deletedBackups).toEqual([]);
    expect(
      bucket.s3.commandCalls(DeleteObjectsCommand).flatMap((c) => c.args[0].input.Delete!.Objects!),
    ).toEqual([]);
  });
});

describe("select-source", () => {
  const cluster: ClusterSettings = {
    name: CLUSTER,
    engine: "mariadb",
    sourcePolicy: "prefer-replica",
    maxReplicaLagSeconds: 60,
  };
  const primary: HostStatus = {
    instanceId: "i-01",
    status: { role: "primary", readOnly: false, binlogSource: "1-db1", replication: null },
  };
  const replica = (
    instanceId: string,
    lagSeconds: number | null,
    lastError: string | null = null,
  ): HostStatus => ({
    instanceId,
    status: {
      role: "replica",
      readOnly: true,
      binlogSource: `${instanceId}-src`,
      replication: {
        sourceHost: "10.0.1.10",
        sourcePort: 3306,
        sourceUser: "rewind_repl",
        ioRunning: true,
        sqlRunning: lastError === null,
        lagSeconds,
        lastError,
      },
    },
  });

  it("prefers the least lagged healthy replica, falls back to the primary, and obeys primary-only", () => {
    expect(chooseSource([primary, replica("i-02", 30), replica("i-03", 5)], cluster).instanceId).toBe("i-03");
    const fallback = chooseSource(
      [primary, replica("i-02", 300), replica("i-03", null, "Duplicate entry")],
      cluster,
    );
    expect(fallback).toMatchObject({ instanceId: "i-01", role: "primary" });
    expect(
      chooseSource([primary, replica("i-03", 5)], { ...cluster, sourcePolicy: "primary" }).instanceId,
    ).toBe("i-01");
  });

  it("an incremental goes to the host that holds its chain, when the policy allows that host now", () => {
    const holding = (host: HostStatus): HostStatus => ({
      ...host,
      status: { ...host.status!, lastBackup: { backupId: "20261105T033000Z-full-db1", incrementals: 1 } },
    });
    const hosts = [primary, replica("i-02", 3), holding(replica("i-03", 20))];
    expect(chooseSource(hosts, cluster).instanceId).toBe("i-02");
    expect(chooseSource(hosts, cluster, undefined, "incremental")).toMatchObject({
      instanceId: "i-03",
      reason: expect.stringContaining("holding the chain of 20261105T033000Z-full-db1"),
    });
    // Too far behind to be backed up: another host, which will take a full backup.
    const lagging = [primary, replica("i-02", 3), holding(replica("i-03", 300))];
    expect(chooseSource(lagging, cluster, undefined, "incremental").instanceId).toBe("i-02");
    // Policy replica never picks the primary, even when it holds the chain.
    expect(
      chooseSource(
        [holding(primary), replica("i-02", 3)],
        { ...cluster, sourcePolicy: "replica" },
        undefined,
        "incremental",
      ).instanceId,
    ).toBe("i-02");
  });

  it("explains why no host qualifies", () => {
    expect(() =>
      chooseSource([primary, replica("i-02", 300), { instanceId: "i-04", problem: "no answer within 90s" }], {
        ...cluster,
        sourcePolicy: "replica",
      }),
    ).toThrow(
      /policy replica found no eligible host \(i-01: primary; i-02: replica, 300s behind \(bound 60s\); i-04: no answer within 90s\)/,
    );
    expect(() => chooseSource([], cluster)).toThrow(/no managed instance is tagged rewind:cluster=orders/);
    expect(() =>
      chooseSource([primary, { ...primary, instanceId: "i-09" }], { ...cluster, sourcePolicy: "primary" }),
    ).toThrow(/more than one writable primary/);
  });

  it("asks a cluster of more than 50 hosts in batches, as SendCommand takes at most 50 instance ids", async () => {
    const ssm = mockClient(SSMClient);
    const ids = Array.from({ length: 120 }, (_, i) => `i-${String(i).padStart(17, "0")}`);
    let sent = 0;
    ssm.on(SendCommandCommand).callsFake(() => ({ Command: { CommandId: `cmd-${sent++}` } }));
    ssm.on(GetCommandInvocationCommand).callsFake((input) => ({
      Status: "Success",
      StandardOutputContent: `${JSON.stringify({ ok: true, command: "status", result: { ...primary.status, binlogSource: input.CommandId } })}\n`,
    }));
    const hosts = await askHostStatus(new SSMClient({ region: "us-east-1" }), ids, {
      documentName: "Rewind-RunAgent",
      timeoutSeconds: 5,
      pollMilliseconds: 1,
    });
    const batches = ssm
      .commandCalls(SendCommandCommand)
      .map((call) => call.args[0].input.InstanceIds!.length);
    expect(batches).toEqual([50, 50, 20]);
    // Each host's answer is read from the command it was sent.
    expect(hosts.map((host) => host.status?.binlogSource)).toEqual(
      ids.map((_, i) => `cmd-${Math.floor(i / 50)}`),
    );
  });

  it("finds the tagged hosts and asks their agents for status through Rewind-RunAgent", async () => {
    const ssm = mockClient(SSMClient);
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [{ InstanceId: "i-02" }, { InstanceId: "i-01" }],
    });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: "cmd-1" } });
    ssm
      .on(GetCommandInvocationCommand, { InstanceId: "i-01" })
      .resolvesOnce({ Status: "InProgress" })
      .resolves({
        Status: "Success",
        StandardOutputContent: `${JSON.stringify({ ok: true, command: "status", result: primary.status })}\n`,
      });
    ssm.on(GetCommandInvocationCommand, { InstanceId: "i-02" }).resolves({
      Status: "Failed",
      StandardOutputContent: `${JSON.stringify({ ok: false, error: { name: "CredentialsRejected", message: "Access denied for rewind_backup" } })}\n`,
    });
    const client = new SSMClient({ region: "us-east-1" });
    const ids = await clusterInstances(client, CLUSTER, "rewind:cluster");
    expect(ids).toEqual(["i-01", "i-02"]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)[0]!.args[0].input.Filters).toEqual([
      { Key: "tag:rewind:cluster", Values: [CLUSTER] },
      { Key: "PingStatus", Values: ["Online"] },
    ]);
    const hosts = await askHostStatus(client, ids, {
      documentName: "Rewind-RunAgent",
      timeoutSeconds: 5,
      pollMilliseconds: 1,
    });
    expect(ssm.commandCalls(SendCommandCommand)[0]!.args[0].input).toMatchObject({
      DocumentName: "Rewind-RunAgent",
      InstanceIds: ["i-01", "i-02"],
      Parameters: { Command: ["status"] },
    });
    expect(ssm.commandCalls(GetCommandInvocationCommand)[0]!.args[0].input).toEqual({
      CommandId: "cmd-1",
      InstanceId: "i-01",
      PluginName: "RunAgent",
    });
    expect(hosts[0]).toEqual(primary);
    expect(hosts[1]).toEqual({
      instanceId: "i-02",
      problem: "agent status Failed (CredentialsRejected: Access denied for rewind_backup)",
    });
    ssm.restore();
  });
});

describe("notify", () => {
  it("publishes a failure with the error name in the subject and the readable cause in the body", async () => {
    const sns = mockClient(SNSClient);
    sns.on(PublishCommand).resolves({ MessageId: "m-1" });
    await publishOutcome(
      new SNSClient({ region: "us-east-1" }),
      "arn:aws:sns:us-east-1:123456789012:rewind",
      {
        stateMachine: "Backup",
        input: { cluster: CLUSTER, type: "full" },
        succeeded: false,
        executionId: "arn:aws:states:us-east-1:123456789012:execution:Rewind-Backup:abc",
        error: {
          Error: "VerifyFailed",
          Cause: JSON.stringify({ errorType: "VerifyFailed", errorMessage: "stream.000.enc: missing" }),
        },
      },
    );
    const publish = sns.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(publish.TopicArn).toBe("arn:aws:sns:us-east-1:123456789012:rewind");
    expect(publish.Subject).toBe("Rewind: Backup of orders FAILED (VerifyFailed)");
    expect(publish.Message).toContain("stream.000.enc: missing");
    expect(publish.Message).toContain("execution:Rewind-Backup:abc");
    expect(publish.MessageAttributes?.cluster).toEqual({ DataType: "String", StringValue: CLUSTER });
    sns.restore();
  });
});
