import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { UnfinishedBackupRecord } from "../../host-agent/backup/unfinished.js";

const PREFIX = "orders/backups/20261121T031500Z-full-db1/";

describe("cleaning up after an interrupted backup", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "rewind-unfinished-"));
  const s3 = mockClient(S3Client);
  afterEach(() => s3.reset());

  const interrupted = () => {
    const record = new UnfinishedBackupRecord(dir);
    record.begin("rewind-backups", PREFIX, `${PREFIX}manifest.json`);
    record.uploadStarted(`${PREFIX}stream.001.enc`, "upload-1");
    return record;
  };

  it("finds out from a listing of the backup's prefix, never a HEAD that answers 403 without ListBucket", async () => {
    interrupted();
    // As S3 answers a host whose ListBucket is limited by s3:prefix (a HEAD carries none).
    s3.on(HeadObjectCommand).rejects(
      Object.assign(new Error("Forbidden"), { name: "403", $metadata: { httpStatusCode: 403 } }),
    );
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: `${PREFIX}stream.000.enc` }] });
    s3.on(AbortMultipartUploadCommand).resolves({});
    s3.on(DeleteObjectsCommand).resolves({});
    const deleted = await new UnfinishedBackupRecord(dir).cleanUp(new S3Client({ region: "us-east-1" }));
    expect(deleted).toEqual([`${PREFIX}stream.000.enc`]);
    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(0);
    expect(s3.commandCalls(ListObjectsV2Command)[0]!.args[0].input).toMatchObject({
      Bucket: "rewind-backups",
      Prefix: PREFIX,
    });
    expect(s3.commandCalls(AbortMultipartUploadCommand)[0]!.args[0].input).toEqual({
      Bucket: "rewind-backups",
      Key: `${PREFIX}stream.001.enc`,
      UploadId: "upload-1",
    });
  });

  it("deletes nothing of a backup whose manifest is there", async () => {
    interrupted();
    s3.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: `${PREFIX}stream.000.enc` }, { Key: `${PREFIX}manifest.json` }],
    });
    s3.on(AbortMultipartUploadCommand).resolves({});
    expect(await new UnfinishedBackupRecord(dir).cleanUp(new S3Client({ region: "us-east-1" }))).toEqual([]);
    expect(s3.commandCalls(DeleteObjectsCommand)).toHaveLength(0);
    rmSync(dir, { recursive: true, force: true });
  });
});
