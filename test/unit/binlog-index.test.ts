import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, describe, expect, it } from "vitest";
import { type BinlogManifest, recordOf } from "../../core/binlog/manifest.js";
import { binlogIndexChunkKey, binlogManifestKey, binlogObjectKey } from "../../core/layout.js";
import { addToBinlogIndex, chunkOf, readShippedTail } from "../../core/store/binlog-index.js";
import { readCatalog } from "../../core/store/catalog.js";
import { planFromStore } from "../../core/store/plan-from-store.js";
import { measureHistory } from "./history-bucket.js";
import { BUCKET, CLUSTER, fakeBucket, putBinlog, SOURCE } from "./lambdas/fake-bucket.js";

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
