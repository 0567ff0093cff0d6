import type { S3Client } from "@aws-sdk/client-s3";
import { HistoryRecord, type HistoryTree, HistoryWriter, historyTree } from "../history.js";
import { type ClusterLocation, historiesPrefix } from "../layout.js";
import { parseManifest } from "../manifest.js";
import { listKeys, readText } from "./objects.js";

/**
 * The cluster's histories and their writers (core/history): one listing of `histories/`, then
 * each record. A cluster that never branched has none and costs one request.
 */
export async function readHistoryTree(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
): Promise<HistoryTree> {
  const { keys } = await listKeys(client, bucket, historiesPrefix(location));
  const histories: HistoryRecord[] = [];
  const writers: HistoryWriter[] = [];
  await Promise.all(
    keys.map(async (key) => {
      const where = `s3://${bucket}/${key}`;
      if (key.endsWith("/history.json")) {
        histories.push(
          parseManifest(HistoryRecord, await readText(client, bucket, key), where, "history record"),
        );
      } else if (/\/writers\/[^/]+\.json$/.test(key)) {
        writers.push(
          parseManifest(HistoryWriter, await readText(client, bucket, key), where, "history writer record"),
        );
      }
    }),
  );
  return historyTree(histories, writers);
}
