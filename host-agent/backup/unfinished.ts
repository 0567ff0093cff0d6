import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AbortMultipartUploadCommand, type S3Client } from "@aws-sdk/client-s3";
import { log } from "../log.js";

/**
 * What a backup in progress has put in S3, kept in the state dir so that a backup cut short
 * (the agent killed, the network gone) is cleaned up by the next run: its multipart uploads are
 * aborted. Its objects have no manifest, so nothing ever uses them; retention deletes them.
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

  /** Written whole or not at all: a SIGKILL mid-write must not leave a record nobody can read. */
  private save(): void {
    const temporary = `${this.file}.${process.pid}`;
    writeFileSync(temporary, JSON.stringify(this.record), { mode: 0o600 });
    renameSync(temporary, this.file);
  }

  /**
   * Aborts the multipart uploads an earlier, unfinished backup left open; returns their keys.
   * Its completed segment objects stay (hosts may not delete): without a manifest they are never
   * used, and retention removes them once no backup can still be running.
   */
  async cleanUp(client: S3Client): Promise<string[]> {
    if (!existsSync(this.file)) return [];
    let left: UnfinishedBackup;
    try {
      left = JSON.parse(readFileSync(this.file, "utf8"));
    } catch (error) {
      // An agent older than the atomic write, killed mid-write: its open uploads cannot be named
      // here; the bucket's lifecycle rule aborts them after 2 days.
      log(
        "warn",
        "the record of an unfinished backup is unreadable; the bucket's lifecycle rule aborts its uploads",
        {
          file: this.file,
          error: (error as Error).message,
        },
      );
      rmSync(this.file, { force: true });
      return [];
    }
    for (const [key, uploadId] of Object.entries(left.uploads)) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: left.bucket, Key: key, UploadId: uploadId }))
        .catch((error: { name?: string }) => {
          if (error.name !== "NoSuchUpload") throw error;
        });
    }
    log("info", "aborted the uploads of an unfinished backup; retention removes its objects", {
      prefix: left.backupPrefix,
      aborted: Object.keys(left.uploads),
    });
    rmSync(this.file, { force: true });
    return Object.keys(left.uploads);
  }
}
