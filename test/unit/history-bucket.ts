import type { BinlogManifest } from "../../core/binlog/manifest.js";
import { binlogIndexChunkKey, binlogManifestKey, binlogObjectKey } from "../../core/layout.js";
import { addToBinlogIndex, chunkOf, readShippedTail } from "../../core/store/binlog-index.js";
import { planFromStore } from "../../core/store/plan-from-store.js";
import { BUCKET, CLUSTER, fakeBucket, putBackup, SOURCE } from "./lambdas/fake-bucket.js";

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

export async function measureHistory(days: number) {
  const made = bucketWithHistory(days);
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
    if (tail.lastShipped?.file !== file(made.files)) throw new Error("the push did not find the newest file");
    await addToBinlogIndex(made.bucket.client, BUCKET, location, SOURCE, [next], tail.index);
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
  if (planned[0] !== backupFile || planned.length !== 201)
    throw new Error(
      `the plan took ${planned[0]} … (${planned.length} files), not ${backupFile} and 200 after it`,
    );
  return { bucket: made.bucket, push, plan };
}
