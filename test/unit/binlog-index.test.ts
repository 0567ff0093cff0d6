import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, it } from "vitest";
import { type BinlogManifest, recordOf } from "../../core/binlog/manifest.js";
import { binlogIndexChunkKey, binlogManifestKey, binlogObjectKey } from "../../core/layout.js";
import { addToBinlogIndex, chunkOf, readShippedTail } from "../../core/store/binlog-index.js";
import { readCatalog } from "../../core/store/catalog.js";
import { planFromStore } from "../../core/store/plan-from-store.js";
import { BUCKET, CLUSTER, fakeBucket, putBackup, putBinlog, SOURCE } from "./lambdas/fake-bucket.js";

/**
 * Work per run must not grow with history (issue 8): with per-minute binlog files, a day is 1,440
 * files per source and a month 43,200. The shipped history is written straight into the fake
 * bucket as a push would leave it: index chunks, manifests and objects (placeholders), for three
 * sources. A push and a plan then run against 1 day and against 30 days of it.
 */
const location = { cluster: CLUSTER };
const PER_DAY = 1440;
const SOURCES = [SOURCE, "2-db2", "3-db3"];
const file = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;
const START = Date.parse("2026-10-01T00:00:00Z");

/** The record of file n (written in minute n), GTIDs 0-1-(10n+1 … 10n+10), as binlog-push makes it. */
function shippedRecord(source: string, n: number) {
  const minute = (offset: number) => new Date(START + n * 60_000 + offset * 1000).toISOString();
  return {
    engine: "mariadb" as const,
    source,
    file: file(n),
    previousFile: n > 1 ? file(n - 1) : null,
    size: 4000,
    sha256: "a".repeat(64),
    storedSha256: "b".repeat(64),
    firstEventTime: minute(0),
    lastEventTime: minute(59),
    lastCommitTime: null,
    gtidsBefore: n > 1 ? `0-1-${10 * n}` : "",
    gtidsAdded: `0-1-${10 * n + 10}`,
    firstGtid: `0-1-${10 * n + 1}`,
    lastGtid: `0-1-${10 * n + 10}`,
    transactions: 10,
    shippedAt: minute(61),
  };
}

function bucketWithHistory(days: number) {
  const bucket = fakeBucket();
  const files = days * PER_DAY;
  for (const source of SOURCES) {
    const chunks = new Map<number, ReturnType<typeof shippedRecord>[]>();
    for (let n = 1; n <= files; n++) {
      const record = shippedRecord(source, n);
      chunks.set(chunkOf(record.file), [...(chunks.get(chunkOf(record.file)) ?? []), record]);
      bucket.objects.set(binlogManifestKey(location, source, record.file), { body: "{}", size: 1 });
      bucket.objects.set(binlogObjectKey(location, source, record.file), { body: "", size: 1 });
    }
    for (const [chunk, records] of chunks) {
      bucket.objects.set(binlogIndexChunkKey(location, source, chunk), {
        body: JSON.stringify({ formatVersion: 1, source, records }),
        size: 1,
      });
    }
  }
  return { bucket, files };
}

/** S3 requests made by `work`, by API. */
async function requestsOf(bucket: ReturnType<typeof fakeBucket>, work: () => Promise<unknown>) {
  bucket.s3.resetHistory();
  await work();
  const calls = bucket.s3.calls();
  return { total: calls.length, byApi: calls.map((call) => (call.args[0] as object).constructor.name) };
}

describe("the binlog index keeps the work of a push and a plan flat as history grows", () => {
  let bucket: ReturnType<typeof fakeBucket> | undefined;
  afterEach(() => bucket?.s3.restore());

  async function measure(days: number) {
    const made = bucketWithHistory(days);
    bucket = made.bucket;
    // The newest full backup (7 kept, as retention would), a few hours before the end of the history.
    for (let d = 1; d <= 7; d++) putBackup(made.bucket.objects, d);
    const newest = putBackup(made.bucket.objects, 8);
    const backupFile = file(made.files - 300);
    const backupsKey = `orders/backups/${newest.backupId}/manifest.json`;
    made.bucket.objects.set(backupsKey, {
      body: JSON.stringify({
        ...newest,
        endTime: new Date(START + (made.files - 300) * 60_000 + 30_000).toISOString(),
        binlog: { file: backupFile, position: 100, gtidSet: `0-1-${10 * (made.files - 300) + 3}` },
      }),
      size: 1,
    });
    // A push that shipped one new file: what S3 holds for it, then the index updated.
    const next = { ...shippedRecord(SOURCE, made.files + 1), cluster: CLUSTER } as unknown as BinlogManifest;
    const push = await requestsOf(made.bucket, async () => {
      const tail = await readShippedTail(made.bucket.client, BUCKET, location, SOURCE);
      expect(tail.lastShipped?.file).toBe(file(made.files));
      await addToBinlogIndex(made.bucket.client, BUCKET, location, SOURCE, [next]);
    });
    const target = new Date(START + (made.files - 100) * 60_000 + 30_000).toISOString();
    let planned: string[] = [];
    const plan = await requestsOf(made.bucket, async () => {
      const result = await planFromStore(made.bucket.client, BUCKET, location, {
        kind: "time",
        time: target,
      });
      planned = result.binlogs.map((binlog) => binlog.file);
    });
    expect(planned[0]).toBe(backupFile);
    expect(planned).toHaveLength(201);
    return { push, plan };
  }

  it("a push makes fewer than 20 requests and a plan fewer than 100, the same after 1 day and after 30", async () => {
    const oneDay = await measure(1);
    const month = await measure(30);
    expect(oneDay.push.total).toBeLessThan(20);
    expect(month.push.total).toBe(oneDay.push.total);
    expect(month.plan.total).toBeLessThan(100);
    expect(month.plan.total).toBeLessThanOrEqual(oneDay.plan.total + 1);
    expect(month.push.byApi.filter((api) => api === "PutObjectCommand")).toHaveLength(1);
  }, 120_000);

  it("a push indexes manifests a killed push left unindexed, and the catalog reads the index", async () => {
    bucket = fakeBucket();
    for (const n of [1, 2, 3]) putBinlog(bucket.objects, n);
    // File 4 shipped, but its push died before updating the index.
    const fourth = putBinlog(bucket.objects, 4);
    const indexKey = binlogIndexChunkKey(location, SOURCE, 0);
    const chunk = JSON.parse(bucket.objects.get(indexKey)!.body);
    chunk.records = chunk.records.filter((record: { file: string }) => record.file !== fourth.file);
    bucket.objects.set(indexKey, { body: JSON.stringify(chunk), size: 1 });

    const tail = await readShippedTail(bucket.client, BUCKET, location, SOURCE);
    expect(tail.lastShipped).toEqual(recordOf(fourth));
    expect(bucket.s3.commandCalls(ListObjectsV2Command).at(-1)!.args[0].input).toMatchObject({
      StartAfter: binlogManifestKey(location, SOURCE, "mariadb-bin.000003"),
    });
    expect(bucket.s3.commandCalls(PutObjectCommand)).toHaveLength(1);
    const catalog = await readCatalog(bucket.client, BUCKET, location);
    expect(catalog.binlogs.get(SOURCE)!.map((record) => record.file)).toEqual([
      "mariadb-bin.000001",
      "mariadb-bin.000002",
      "mariadb-bin.000003",
      "mariadb-bin.000004",
    ]);
  });
});
