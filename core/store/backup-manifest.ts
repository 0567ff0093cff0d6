import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../errors.js";
import { backupManifestKey, type ClusterLocation } from "../layout.js";
import { type BackupManifest, parseBackupManifest } from "../manifest.js";

export async function readBackupManifest(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  backupId: string,
): Promise<BackupManifest> {
  const key = backupManifestKey(location, backupId);
  try {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await object.Body!.transformToString();
    const manifest = parseBackupManifest(text, `s3://${bucket}/${key}`);
    if (manifest.backupId !== backupId || manifest.cluster !== location.cluster) {
      throw new RewindError(
        ErrorNames.verify,
        `s3://${bucket}/${key} describes ${manifest.cluster}/${manifest.backupId}, not ${location.cluster}/${backupId}`,
      );
    }
    return manifest;
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === "NoSuchKey" || name === "NotFound") {
      throw new RewindError(
        ErrorNames.notFound,
        `backup ${backupId} has no manifest at s3://${bucket}/${key}: it does not exist or never completed; \`rewind-agent list\` shows the complete backups`,
      );
    }
    throw error;
  }
}
