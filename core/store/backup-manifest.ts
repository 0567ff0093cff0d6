import type { S3Client } from "@aws-sdk/client-s3";
import { type BackupChain, chainOf, MAX_LINKS } from "../backup-chain.js";
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

/**
 * The chain `backupId` restores through, read link by link from its manifests (a bounded number
 * of requests, however many backups are kept): complete, or broken at the first link missing or
 * not fitting its child (core/backup-chain).
 */
export async function readBackupChain(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  backupId: string,
): Promise<BackupChain> {
  const read = new Map<string, BackupManifest>();
  let next: string | null = backupId;
  while (next !== null && !read.has(next) && read.size < MAX_LINKS) {
    const manifest: BackupManifest | undefined = await readBackupManifest(
      client,
      bucket,
      location,
      next,
    ).catch((error: Error) => {
      if (error instanceof RewindError && error.name === ErrorNames.notFound) return undefined;
      throw error;
    });
    if (!manifest) break;
    read.set(next, manifest);
    next = manifest.type === "incremental" ? manifest.parentBackupId : null;
  }
  const backup = read.get(backupId);
  if (!backup) {
    return { complete: false, links: [], missing: backupId, reason: `backup ${backupId} has no manifest` };
  }
  return chainOf(backup, read);
}
