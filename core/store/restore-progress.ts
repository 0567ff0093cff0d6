import type { S3Client } from "@aws-sdk/client-s3";
import { type RestoreProgressRecord, RestoreProgressSchema } from "../contracts/restore-progress.js";
import { type ClusterLocation, restoresPrefix } from "../layout.js";
import { listKeys, readText } from "./objects.js";

/** A running restore whose record has not changed for this long has lost its agent. */
export const RESTORE_PROGRESS_STALLED_MS = 10 * 60 * 1000;

export interface ListedRestoreProgress extends RestoreProgressRecord {
  /** Running by its record, but not updated for RESTORE_PROGRESS_STALLED_MS: its agent is gone. */
  readonly stalled: boolean;
}

/**
 * The restores' progress records (`restores/<id>/progress.json`), newest first: every running
 * one and the `finished` most recent others. A record that does not parse is skipped (the
 * restore's report says how it ended).
 */
export async function readRestoreProgress(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  { finished = 3, now = Date.now() }: { finished?: number; now?: number } = {},
): Promise<ListedRestoreProgress[]> {
  const { keys } = await listKeys(client, bucket, restoresPrefix(location));
  const records: ListedRestoreProgress[] = [];
  for (const key of keys.filter((k) => k.endsWith("/progress.json"))) {
    const text = await readText(client, bucket, key);
    let record: RestoreProgressRecord;
    try {
      record = RestoreProgressSchema.parse(JSON.parse(text));
    } catch {
      continue;
    }
    const stalled =
      record.state === "running" && now - Date.parse(record.updatedAt) > RESTORE_PROGRESS_STALLED_MS;
    records.push({ ...record, stalled });
  }
  records.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  const running = records.filter((r) => r.state === "running");
  const ended = records.filter((r) => r.state !== "running").slice(0, finished);
  return [...running, ...ended];
}
