import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backupManifestKey, binlogManifestKey } from "../../core/layout.js";
import { loadPlannedRestore, StoredRestorePlan } from "../../core/store/planned-restore.js";
import { parseInput, RestoreInput } from "../../lambdas/lib/inputs.js";
import { planClusterRestore } from "../../lambdas/lib/plan-restore.js";
import {
  BUCKET,
  binlogFile,
  CLUSTER,
  fakeBucket,
  putBackup,
  putBinlog,
  SOURCE,
} from "./lambdas/fake-bucket.js";

/** Plan once: the agent restores exactly what plan-restore planned and Verify checked, or nothing. */
describe("a restore plan from plan-restore, executed by the agent", () => {
  let bucket: ReturnType<typeof fakeBucket>;
  const location = { cluster: CLUSTER };
  beforeEach(() => {
    bucket = fakeBucket();
    for (const d of [1, 2, 3, 4, 5]) putBackup(bucket.objects, d);
    for (const n of [1, 2, 3, 4, 5, 6]) putBinlog(bucket.objects, n);
  });
  afterEach(() => bucket.s3.restore());

  const storedPlan = async () => {
    const input = parseInput(
      RestoreInput,
      { cluster: CLUSTER, targetInstanceId: "i-0abc1234def567890", pointInTime: "2026-11-05T12:00:00Z" },
      "Restore",
    );
    await planClusterRestore(bucket.client, BUCKET, input, "exec-1");
    const put = bucket.s3.commandCalls(PutObjectCommand).at(-1)!.args[0].input;
    bucket.s3.resetHistory();
    return StoredRestorePlan.parse(JSON.parse(String(put.Body)));
  };

  it("loads exactly the planned backup and binlogs, reading only their manifests", async () => {
    const stored = await storedPlan();
    expect(stored).toMatchObject({
      backupId: "20261105T033000Z-full-db1",
      binlogs: [{ source: SOURCE, file: binlogFile(5), startPosition: 100 }],
    });
    const plan = await loadPlannedRestore(bucket.client, BUCKET, location, stored);
    expect(plan.backup.backupId).toBe(stored.backupId);
    expect(plan.binlogs.map((b) => [b.file, b.startPosition])).toEqual([[binlogFile(5), 100]]);
    expect(plan.target).toEqual({ kind: "time", time: "2026-11-05T12:00:00.000Z" });
    expect(bucket.s3.commandCalls(ListObjectsV2Command)).toHaveLength(0);
    expect(bucket.s3.commandCalls(GetObjectCommand)).toHaveLength(2);
  });

  it("loads an incremental's chain as planned, and refuses a link that changed or a chain the plan does not name whole", async () => {
    const full = putBackup(bucket.objects, 5);
    const first = putBackup(bucket.objects, 5, { parent: full, hour: 6 });
    const second = putBackup(bucket.objects, 5, { parent: first, hour: 9 });
    const stored = await storedPlan();
    expect(stored.backupId).toBe(second.backupId);
    const plan = await loadPlannedRestore(bucket.client, BUCKET, location, stored);
    expect(plan.chain.map((link) => link.backupId)).toEqual([full.backupId, first.backupId, second.backupId]);

    // A plan that names only part of the chain.
    await expect(
      loadPlannedRestore(bucket.client, BUCKET, location, { ...stored, chain: stored.chain!.slice(1) }),
    ).rejects.toThrow(new RegExp(`based on ${full.backupId}, which S3 does not hold complete`));
    // A link whose manifest changed since the plan was verified.
    const key = backupManifestKey(location, first.backupId);
    const original = bucket.objects.get(key)!;
    bucket.objects.set(key, {
      ...original,
      body: JSON.stringify({ ...first, storedSha256: "e".repeat(64) }),
    });
    await expect(loadPlannedRestore(bucket.client, BUCKET, location, stored)).rejects.toThrow(
      new RegExp(
        `backup ${first.backupId} \\(a link of ${second.backupId}'s chain\\) now has stored SHA-256 e{64}`,
      ),
    );
  });

  it("refuses, naming the difference, when a planned object is gone or is not the one verified", async () => {
    const stored = await storedPlan();
    const binlogKey = binlogManifestKey(location, SOURCE, binlogFile(5));
    const original = bucket.objects.get(binlogKey)!;
    const changedManifest = { ...JSON.parse(original.body.toString()), sha256: "f".repeat(64) };
    bucket.objects.set(binlogKey, { ...original, body: JSON.stringify(changedManifest) });
    await expect(loadPlannedRestore(bucket.client, BUCKET, location, stored)).rejects.toThrow(
      /S3 no longer holds what the plan for orders to 2026-11-05T12:00:00.000Z was verified against: binlog 1-db1\/mariadb-bin.000005 is not the one verified .*plan the restore again/,
    );
    bucket.objects.delete(binlogKey);
    await expect(loadPlannedRestore(bucket.client, BUCKET, location, stored)).rejects.toThrow(
      /binlog manifest s3:\/\/rewind-backups\/orders\/binlogs\/1-db1\/mariadb-bin.000005.json is gone/,
    );
    bucket.objects.set(binlogKey, original);
    await expect(
      loadPlannedRestore(bucket.client, BUCKET, location, { ...stored, backupStoredSha256: "0".repeat(64) }),
    ).rejects.toThrow(/backup 20261105T033000Z-full-db1 now has stored SHA-256 .*, the plan verified 0{64}/);
    await expect(
      loadPlannedRestore(bucket.client, BUCKET, location, {
        ...stored,
        binlogs: [{ ...stored.binlogs[0]!, startPosition: 4 }],
      }),
    ).rejects.toThrow(/starts replay at mariadb-bin.000005:4, but backup .* ends at mariadb-bin.000005:100/);
    await expect(loadPlannedRestore(bucket.client, BUCKET, location, stored)).resolves.toMatchObject({
      backup: { backupId: stored.backupId },
    });
  });
});
