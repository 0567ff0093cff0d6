import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
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
    // Presence is read from a listing of the backup's own prefix, which the host may list: a HEAD
    // of a missing key answers 403, not 404, to a caller whose ListBucket is limited by s3:prefix.
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: left.bucket,
          Prefix: left.backupPrefix,
          ContinuationToken: token,
        }),
      );
      keys.push(...(page.Contents ?? []).map((object) => object.Key!).filter(Boolean));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const manifestExists = keys.includes(left.manifestKey);
    for (const [key, uploadId] of Object.entries(left.uploads)) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: left.bucket, Key: key, UploadId: uploadId }))
        .catch((error: { name?: string }) => {
          if (error.name !== "NoSuchUpload") throw error;
        });
    }
    const deleted: string[] = [];
    if (!manifestExists) {
      for (let at = 0; at < keys.length; at += 1000) {
        const batch = keys.slice(at, at + 1000);
        await client.send(
          new DeleteObjectsCommand({
            Bucket: left.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })) },
          }),
        );
        deleted.push(...batch);
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
