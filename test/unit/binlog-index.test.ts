import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, it } from "vitest";
import { recordOf } from "../../core/binlog/manifest.js";
import { binlogIndexChunkKey, binlogManifestKey } from "../../core/layout.js";
import { addToBinlogIndex, readShippedTail, tailHint } from "../../core/store/binlog-index.js";
import { readCatalog } from "../../core/store/catalog.js";
import { measureHistory } from "./history-bucket.js";
import { BUCKET, binlogFile, CLUSTER, fakeBucket, putBinlog, SOURCE } from "./lambdas/fake-bucket.js";

const location = { cluster: CLUSTER };

describe("the binlog index keeps the work of a push and a plan flat as history grows", () => {
  let bucket: ReturnType<typeof fakeBucket> | undefined;
  afterEach(() => bucket?.s3.restore());

  async function measure(days: number) {
    const made = await measureHistory(days);
    bucket = made.bucket;
    return made;
  }

  it("a push makes fewer than 20 requests and a plan fewer than 100, the same after 1 day and after 30", async () => {
    const oneDay = await measure(1);
    const month = await measure(30);
    expect(oneDay.push.total).toBeLessThan(20);
    expect(month.push.total).toBe(oneDay.push.total);
    expect(month.plan.total).toBeLessThan(100);
    // A plan reads each of the three sources' index from the chunk holding the backup's point to
    // the newest: one more chunk each when the backup sits in an older chunk than the newest
    // (here after 30 days, not after 1), never more however long the history.
    expect(month.plan.total).toBeLessThanOrEqual(oneDay.plan.total + 3);
    expect(month.push.byApi.filter((api) => api === "PutObjectCommand")).toHaveLength(1);
  }, 120_000);

  it("a push indexes manifests a killed push left unindexed, and the catalog reads the index", async () => {
    bucket = fakeBucket();
    for (const n of [1, 2, 3]) putBinlog(bucket.objects, n);
    // File 4 shipped, but its push died before updating the index.
    const fourth = putBinlog(bucket.objects, 4);
    const indexKey = binlogIndexChunkKey(location, SOURCE, 0);
    const chunk = JSON.parse(bucket.objects.get(indexKey)!.body.toString());
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

  it("an index write S3 refuses for a while never stops shipping: the tail goes by the manifests, and the next try indexes them", async () => {
    const store = fakeBucket();
    bucket = store;
    for (const n of [1, 2, 3]) putBinlog(store.objects, n);
    const fourth = putBinlog(store.objects, 4, { indexed: false });
    let refusing = true;
    store.s3.on(PutObjectCommand).callsFake((input) => {
      if (refusing && input.Key!.includes("/index/")) {
        throw Object.assign(new Error("We encountered an internal error. Please try again."), {
          name: "InternalError",
        });
      }
      const body = String(input.Body);
      store.objects.set(input.Key!, { body, size: body.length });
      return { ETag: `"${body.length}"` };
    });
    const refused = await readShippedTail(bucket.client, BUCKET, location, SOURCE);
    expect(refused.lastShipped).toEqual(recordOf(fourth));
    expect(refused).toMatchObject({ unindexed: 1, indexFailure: expect.stringMatching(/internal error/) });
    refusing = false;
    const indexed = await readShippedTail(bucket.client, BUCKET, location, SOURCE);
    expect(indexed.indexFailure).toBeUndefined();
    const catalog = await readCatalog(bucket.client, BUCKET, location);
    expect(catalog.binlogs.get(SOURCE)!.map((record) => record.file)).toEqual([1, 2, 3, 4].map(binlogFile));
  });

  it("a push with the previous push's hint reads one chunk and lists nothing; a rewritten chunk or a stale hint falls back to listing", async () => {
    bucket = fakeBucket();
    for (const n of [1, 2, 3]) putBinlog(bucket.objects, n);
    const first = await readShippedTail(bucket.client, BUCKET, location, SOURCE);
    const hint = tailHint(location, SOURCE, first.lastShipped, first.index)!;
    expect(hint).toMatchObject({
      lastShipped: { file: "mariadb-bin.000003" },
      chunkKey: binlogIndexChunkKey(location, SOURCE, 0),
    });

    bucket.s3.resetHistory();
    const fast = await readShippedTail(bucket.client, BUCKET, location, SOURCE, hint);
    expect(fast.fromHint).toBe(true);
    expect(fast.lastShipped?.file).toBe("mariadb-bin.000003");
    expect(bucket.s3.calls().map((call) => (call.args[0] as object).constructor.name)).toEqual([
      "GetObjectCommand",
    ]);
    // The push ships file 4 and indexes it from what it read: one PUT, and a new hint.
    const fourth = putBinlog(bucket.objects, 4, { indexed: false });
    await addToBinlogIndex(bucket.client, BUCKET, location, SOURCE, [fourth], fast.index);
    const next = tailHint(location, SOURCE, recordOf(fourth), fast.index)!;
    expect(next.lastShipped.file).toBe("mariadb-bin.000004");
    expect(next.etag).not.toBe(hint.etag);

    // Retention rewrote the chunk since: its ETag changed, so the push lists and reads afresh.
    const key = binlogIndexChunkKey(location, SOURCE, 0);
    const chunk = JSON.parse(bucket.objects.get(key)!.body.toString());
    chunk.records = chunk.records.slice(1);
    bucket.objects.set(key, { body: JSON.stringify(chunk), size: 1 });
    bucket.s3.resetHistory();
    const slow = await readShippedTail(bucket.client, BUCKET, location, SOURCE, next);
    expect(slow.fromHint).toBe(false);
    expect(slow.lastShipped?.file).toBe("mariadb-bin.000004");
    expect(bucket.s3.commandCalls(ListObjectsV2Command).length).toBeGreaterThan(0);
  });
});
