import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from "@aws-sdk/client-s3";
import { log } from "../log.js";

/**
 * What a backup in progress has put in S3, kept in the state dir so that a backup cut short
 * (the agent killed, the network gone) is cleaned up by the next run: its multipart uploads are
 * aborted and its segment objects deleted, unless its manifest exists.
 */
interface UnfinishedBackup {
  readonly bucket: string;
  readonly backupPrefix: string;
  readonly manifestKey: string;
  readonly uploads: Record<string, string>;
}

export class UnfinishedBackupRecord {
  private readonly file: string;
  private record?: UnfinishedBackup;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "unfinished-backup.json");
  }

  begin(bucket: string, backupPrefix: string, manifestKey: string): void {
    this.record = { bucket, backupPrefix, manifestKey, uploads: {} };
    this.save();
  }

  uploadStarted(key: string, uploadId: string): void {
    if (!this.record) return;
    this.record.uploads[key] = uploadId;
    this.save();
  }

  uploadEnded(key: string): void {
    if (!this.record) return;
    delete this.record.uploads[key];
    this.save();
  }

  /** The backup is complete: nothing to clean up. */
  finish(): void {
    this.record = undefined;
    rmSync(this.file, { force: true });
  }

  private save(): void {
    writeFileSync(this.file, JSON.stringify(this.record), { mode: 0o600 });
  }

  /** Removes what an earlier, unfinished backup left; returns the keys it deleted. */
  async cleanUp(client: S3Client): Promise<string[]> {
    if (!existsSync(this.file)) return [];
    const left: UnfinishedBackup = JSON.parse(readFileSync(this.file, "utf8"));
    const manifestExists = await client
      .send(new HeadObjectCommand({ Bucket: left.bucket, Key: left.manifestKey }))
      .then(
        () => true,
        (error: { name?: string }) => {
          if (error.name === "NotFound" || error.name === "NoSuchKey") return false;
          throw error;
        },
      );
    for (const [key, uploadId] of Object.entries(left.uploads)) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: left.bucket, Key: key, UploadId: uploadId }))
        .catch((error: { name?: string }) => {
          if (error.name !== "NoSuchUpload") throw error;
        });
    }
    const deleted: string[] = [];
    if (!manifestExists) {
      const listed = await client.send(
        new ListObjectsV2Command({ Bucket: left.bucket, Prefix: left.backupPrefix }),
      );
      const keys = (listed.Contents ?? []).map((object) => object.Key!).filter(Boolean);
      if (keys.length > 0) {
        await client.send(
          new DeleteObjectsCommand({
            Bucket: left.bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })) },
          }),
        );
        deleted.push(...keys);
      }
    }
    log("info", "cleaned up an unfinished backup", {
      prefix: left.backupPrefix,
      deleted,
      aborted: Object.keys(left.uploads),
    });
    rmSync(this.file, { force: true });
    return deleted;
  }
}
