import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { binlogChunksPrefix, binlogsPrefix } from "../../core/layout.js";
import { readBackupChain, readBackupManifest } from "../../core/store/backup-manifest.js";
import { readPlannedChunks } from "../../core/store/binlog-chunks.js";
import { readBinlogManifest } from "../../core/store/catalog.js";
import { checkStoredObjects } from "../../core/store/segment-check.js";
import type { VerifyInput } from "./inputs.js";

export interface VerifyReport {
  readonly backupId: string;
  readonly segments: number;
  readonly storedBytes: number;
  /** An incremental's chain, full backup first, every link checked. */
  readonly chain?: string[];
  readonly binlogs: number;
  readonly verified: true;
}

/**
 * Checks a backup's segment objects (and the binlogs a restore will replay) against their
 * manifests: size, part count and every part's SHA-256, as S3 stored them. Any difference is a
 * VerifyFailed naming the object; the backup must not be trusted until it is explained.
 */
export async function verifyBackup(
  client: S3Client,
  bucket: string,
  input: VerifyInput,
): Promise<VerifyReport> {
  const location = { cluster: input.cluster };
  const manifest = await readBackupManifest(client, bucket, location, input.backupId);
  // An incremental restores through its chain: every link's manifest present and fitting, and
  // every link's objects checked.
  const chain = await readBackupChain(client, bucket, location, manifest);
  if (!chain.complete) {
    throw new RewindError(
      ErrorNames.verify,
      `backup ${input.backupId} of ${input.cluster} cannot be restored: its chain needs ${chain.missing} (${chain.reason}). Restore from an older backup, and take a new full backup`,
    );
  }
  const problems: string[] = [];
  for (const link of chain.links) problems.push(...(await checkStoredObjects(client, bucket, link.segments)));
  // Only the plan's binlogs: reading every manifest of a source would grow with the retention window.
  for (const wanted of input.binlogs) {
    if (wanted.chunks) {
      // One LIST and the newest planned chunk's header, however many chunks: each chunk carries
      // its own hashes, which the restore checks as it downloads it.
      try {
        await readPlannedChunks(client, bucket, location, {
          source: wanted.source,
          file: wanted.file,
          chunks: wanted.chunks,
          sha256: wanted.sha256,
          storedSha256: wanted.storedSha256,
        });
      } catch (error) {
        problems.push(
          `${binlogChunksPrefix(location, wanted.source, wanted.file)}: ${(error as Error).message}`,
        );
      }
      continue;
    }
    const binlog = await readBinlogManifest(client, bucket, location, wanted.source, wanted.file);
    if (!binlog) {
      problems.push(`${binlogsPrefix(location, wanted.source)}${wanted.file}: its manifest is missing`);
      continue;
    }
    problems.push(...(await checkStoredObjects(client, bucket, [binlog.stored])));
  }
  if (problems.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `backup ${input.backupId} of ${input.cluster} does not match what S3 holds: ${problems.join("; ")}. Do not restore from it; take a new full backup and find out what changed the objects`,
    );
  }
  return {
    backupId: manifest.backupId,
    segments: chain.links.reduce((sum, link) => sum + link.segments.length, 0),
    storedBytes: chain.links.reduce((sum, link) => sum + link.storedBytes, 0),
    ...(chain.links.length > 1 ? { chain: chain.links.map((link) => link.backupId) } : {}),
    binlogs: input.binlogs.length,
    verified: true,
  };
}
