import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AbortMultipartUploadCommand, S3Client } from "@aws-sdk/client-s3";
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

  it("aborts its open uploads and deletes nothing (hosts may not), asking S3 nothing else", async () => {
    interrupted();
    s3.on(AbortMultipartUploadCommand).resolves({});
    const aborted = await new UnfinishedBackupRecord(dir).cleanUp(new S3Client({ region: "us-east-1" }));
    expect(aborted).toEqual([`${PREFIX}stream.001.enc`]);
    expect(s3.commandCalls(AbortMultipartUploadCommand)[0]!.args[0].input).toEqual({
      Bucket: "rewind-backups",
      Key: `${PREFIX}stream.001.enc`,
      UploadId: "upload-1",
    });
    // No HEAD (403 without an unconditioned ListBucket), no listing, no delete.
    expect(s3.calls()).toHaveLength(1);
    expect(await new UnfinishedBackupRecord(dir).cleanUp(new S3Client({ region: "us-east-1" }))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
