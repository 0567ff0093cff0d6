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
 * The chain a backup restores through, read link by link from its manifests (a bounded number
 * of requests, however many backups are kept): complete, or broken at the first link missing or
 * not fitting its child (core/backup-chain). `start` is the backup's id, or its manifest when
 * already read (it is not read again).
 */
export async function readBackupChain(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  start: string | BackupManifest,
): Promise<BackupChain> {
  const backupId = typeof start === "string" ? start : start.backupId;
  const readIfPresent = (id: string): Promise<BackupManifest | undefined> =>
    readBackupManifest(client, bucket, location, id).catch((error: Error) => {
      if (error instanceof RewindError && error.name === ErrorNames.notFound) return undefined;
      throw error;
    });
  const read = new Map<string, BackupManifest>();
  let current = typeof start === "string" ? await readIfPresent(start) : start;
  while (current) {
    read.set(current.backupId, current);
    const parent = current.type === "incremental" ? current.parentBackupId : null;
    if (!parent || read.has(parent) || read.size >= MAX_LINKS) break;
    current = await readIfPresent(parent);
  }
  const backup = read.get(backupId);
  if (!backup) {
    return { complete: false, links: [], missing: backupId, reason: `backup ${backupId} has no manifest` };
  }
  return chainOf(backup, read);
}
