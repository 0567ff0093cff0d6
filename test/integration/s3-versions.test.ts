import { createHash } from "node:crypto";
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3Client } from "../../host-agent/clients.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { BUCKET, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

const DAY = 86_400;

/**
 * The S3 stand-in on a versioned bucket with a default Object Lock retention and the stack's
 * lifecycle rules: S3's documented behaviour that fauxqs alone does not have (s3-versions.ts).
 */
describe("the S3 stand-in's versions, Object Lock and lifecycle", () => {
  const scratch = scratchDir("s3-versions");
  let s3: S3Server;
  let client: S3Client;
  const put = (key: string, body: string) =>
    client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: body,
        ChecksumSHA256: createHash("sha256").update(body).digest("base64"),
      }),
    );
  const get = async (key: string, versionId?: string) => {
    const object = await client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: key, VersionId: versionId }),
    );
    return object.Body!.transformToString();
  };
  const versions = async (prefix: string) => {
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: prefix }));
    return {
      versions: (listed.Versions ?? []).map((v) => ({ key: v.Key, id: v.VersionId, latest: v.IsLatest })),
      markers: (listed.DeleteMarkers ?? []).map((m) => ({ key: m.Key, id: m.VersionId, latest: m.IsLatest })),
    };
  };
  const keys = async (prefix: string) =>
    ((await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map(
      (object) => object.Key,
    );

  beforeAll(async () => {
    s3 = await S3Server.start({
      storageDir: `${scratch.dir}/s3`,
      buckets: [BUCKET],
      rules: {
        objectLock: { mode: "governance", days: 3 },
        lifecycle: { noncurrentDays: 1, expiredObjectDeleteMarker: true, abortIncompleteDays: 2 },
      },
    });
    client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  });
  afterAll(async () => {
    await s3?.stop();
    scratch.remove();
  });

  it("an overwrite keeps the old version; a delete without a version id only writes a marker that listings skip", async () => {
    await put("a/index.json", "one");
    await put("a/index.json", "two");
    const before = await versions("a/");
    expect(before.versions).toHaveLength(2);
    expect(before.versions[0]).toMatchObject({ latest: true });
    expect(await get("a/index.json")).toBe("two");
    expect(await get("a/index.json", before.versions[1]!.id)).toBe("one");

    const deleted = await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "a/index.json" }));
    expect(deleted.DeleteMarker).toBe(true);
    expect(await keys("a/")).toEqual([]);
    await expect(get("a/index.json")).rejects.toMatchObject({ name: "NoSuchKey" });
    const after = await versions("a/");
    expect(after.versions).toHaveLength(2);
    expect(after.markers).toEqual([{ key: "a/index.json", id: deleted.VersionId, latest: true }]);
    // Nothing went away: every byte is still stored and billed.
    const storage = await s3.storage(BUCKET, "a/");
    expect(storage).toMatchObject({
      objects: 0,
      versions: 2,
      noncurrentVersions: 2,
      deleteMarkers: 1,
      liveBytes: 0,
    });
    expect(storage.keptBytes).toBe(6 + "a/index.json".length);
  });

  it("a locked version cannot be deleted by id until its retention lapses; a marker can always be written", async () => {
    const written = await put("b/segment", "locked bytes");
    await expect(
      client.send(
        new DeleteObjectCommand({ Bucket: BUCKET, Key: "b/segment", VersionId: written.VersionId }),
      ),
    ).rejects.toMatchObject({ name: "AccessDenied" });
    const batch = await client.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: "b/segment", VersionId: written.VersionId }] },
      }),
    );
    expect(batch.Errors).toEqual([expect.objectContaining({ Key: "b/segment", Code: "AccessDenied" })]);
    expect(await get("b/segment")).toBe("locked bytes");

    await s3.advanceClock(3 * DAY + 60);
    const later = await client.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: "b/segment", VersionId: written.VersionId }] },
      }),
    );
    expect(later.Errors ?? []).toEqual([]);
    expect(await versions("b/")).toEqual({ versions: [], markers: [] });
    expect(await s3.storage(BUCKET, "b/")).toMatchObject({ versions: 0, keptBytes: 0 });
  });

  it("lifecycle expires noncurrent versions a day after they became noncurrent, once unlocked, then the markers left alone", async () => {
    await put("c/manifest.json", "v1");
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "c/manifest.json" }));
    // A day on, the noncurrent version is due, but its 3-day lock still protects it.
    const first = await s3.advanceClock(DAY + 60);
    expect(first.lifecycle?.heldByLock).toBeGreaterThanOrEqual(1);
    expect((await versions("c/")).versions).toHaveLength(1);
    // Once the lock lapses the version goes, and with it the marker that had nothing left behind it.
    const second = await s3.advanceClock(3 * DAY);
    expect(second.lifecycle?.expiredNoncurrent).toBeGreaterThanOrEqual(1);
    expect(second.lifecycle?.expiredDeleteMarkers).toBeGreaterThanOrEqual(1);
    expect(await versions("c/")).toEqual({ versions: [], markers: [] });
  });

  it("aborts a multipart upload left unfinished for the rule's days", async () => {
    await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: "d/stream.000.enc" }));
    expect((await s3.advanceClock(DAY)).lifecycle?.abortedUploads).toBe(0);
    expect((await s3.advanceClock(DAY + 60)).lifecycle?.abortedUploads).toBe(1);
  });

  it("keeps its versions, and its clock, across a restart", async () => {
    await put("e/one", "first");
    await put("e/one", "second");
    const { now } = await s3.advanceClock(0);
    await s3.restart();
    expect(Date.parse((await s3.advanceClock(0)).now)).toBeGreaterThanOrEqual(Date.parse(now));
    client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
    const listed = await versions("e/");
    expect(listed.versions).toHaveLength(2);
    expect(await get("e/one", listed.versions[1]!.id)).toBe("first");
  });
});
