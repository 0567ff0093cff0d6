import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../errors.js";
import { backupManifestKey, type ClusterLocation } from "../layout.js";
import { type BackupManifest, parseBackupManifest } from "../manifest.js";
import { readTextIfPresent } from "./objects.js";

export async function readBackupManifest(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  backupId: string,
): Promise<BackupManifest> {
  const key = backupManifestKey(location, backupId);
  const text = await readTextIfPresent(client, bucket, key);
  if (text === undefined) {
    throw new RewindError(
      ErrorNames.notFound,
      `backup ${backupId} has no manifest at s3://${bucket}/${key}: it does not exist or never completed; \`rewind-agent list\` shows the complete backups`,
    );
  }
  const manifest = parseBackupManifest(text, `s3://${bucket}/${key}`);
  if (manifest.backupId !== backupId || manifest.cluster !== location.cluster) {
    throw new RewindError(
      ErrorNames.verify,
      `s3://${bucket}/${key} describes ${manifest.cluster}/${manifest.backupId}, not ${location.cluster}/${backupId}`,
    );
  }
  return manifest;
}
