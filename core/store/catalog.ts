import type { S3Client } from "@aws-sdk/client-s3";
import { type BinlogManifest, type BinlogRecord, parseBinlogManifest } from "../binlog/manifest.js";
import { gtidModel } from "../gtid/index.js";
import { allBinlogsPrefix, backupsPrefix, binlogManifestKey, type ClusterLocation } from "../layout.js";
import { type BackupManifest, parseBackupManifest } from "../manifest.js";
import { readChunkedTail } from "./binlog-chunks.js";
import { presentInS3, readBinlogIndex, readBinlogIndexBack } from "./binlog-index.js";
import { listKeys, readText, readTextIfPresent } from "./objects.js";

/** What S3 holds for a cluster: S3 is the truth, never a local cache. */
export interface Catalog {
  readonly backups: BackupManifest[];
  /** Backup prefixes with segments but no manifest: never complete, never used. */
  readonly incompleteBackups: string[];
  /**
   * Each source's shipped binlogs: closed files from its index, then the files it is writing as
   * the prefix its chunks hold (core/binlog/chunk).
   */
  readonly binlogs: ReadonlyMap<string, BinlogRecord[]>;
}

/** One shipped binlog's manifest, or undefined when it was never shipped (or was deleted). */
export async function readBinlogManifest(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
  file: string,
): Promise<BinlogManifest | undefined> {
  const key = binlogManifestKey(location, source, file);
  const text = await readTextIfPresent(client, bucket, key);
  return text === undefined ? undefined : parseBinlogManifest(text, `s3://${bucket}/${key}`);
}

/** The complete full and incremental backups (manifest present), oldest first, and the incomplete ones. */
export async function readBackups(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
): Promise<Pick<Catalog, "backups" | "incompleteBackups">> {
  const backups: BackupManifest[] = [];
  const incompleteBackups: string[] = [];
  // Presence from the listing, never a GET of a missing manifest: without an unconditioned
  // s3:ListBucket that answers 403, not 404. Segment names cost a LIST page per 1,000.
  const { keys } = await listKeys(client, bucket, backupsPrefix(location));
  const prefixes = new Set(keys.map((key) => key.slice(0, key.lastIndexOf("/") + 1)));
  for (const prefix of prefixes) {
    const manifestKey = `${prefix}manifest.json`;
    if (keys.includes(manifestKey)) {
      backups.push(
        parseBackupManifest(await readText(client, bucket, manifestKey), `s3://${bucket}/${manifestKey}`),
      );
    } else {
      incompleteBackups.push(prefix);
    }
  }
  backups.sort((a, b) => a.backupId.localeCompare(b.backupId));
  return { backups, incompleteBackups };
}

/**
 * Everything a cluster holds: backups and every source's binlog index. For `list` and retention,
 * which look at the whole window; planning a restore reads less (core/store/plan-from-store).
 * `checkPresence` also lists each source's object names so that a file deleted behind the index's
 * back shows as the gap it is.
 */
export async function readCatalog(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  options: { readonly checkPresence?: boolean } = {},
): Promise<Catalog> {
  const { backups, incompleteBackups } = await readBackups(client, bucket, location);
  return { backups, incompleteBackups, binlogs: await readSources(client, bucket, location, options) };
}

/**
 * Every source's shipped binlogs: its index, then its chunked tail. Sources are the prefixes
 * under `binlogs/`. With `from` (a plan from a backup) only what a chain from that backup can
 * use is read: its own source from the index chunk of its file on, the others back from the
 * newest chunk to the one that starts at or before the backup's GTIDs, so a plan's requests do
 * not grow with history.
 */
export async function readSources(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  options: { readonly checkPresence?: boolean; readonly from?: BackupManifest } = {},
): Promise<Map<string, BinlogRecord[]>> {
  const from = options.from;
  const start = from ? gtidModel(from.engine.name).parseSet(from.binlog.gtidSet) : undefined;
  const binlogs = new Map<string, BinlogRecord[]>();
  const root = allBinlogsPrefix(location);
  for (const prefix of (await listKeys(client, bucket, root, { delimiter: "/" })).prefixes) {
    const source = prefix.slice(root.length, -1);
    const indexed =
      from && source !== from.binlogSource
        ? await readBinlogIndexBack(client, bucket, location, source, (record) =>
            start!.contains(gtidModel(record.engine).parseSet(record.gtidsBefore)),
          )
        : await readBinlogIndex(
            client,
            bucket,
            location,
            source,
            from?.binlogSource === source ? from.binlog.file : undefined,
          );
    const tail = await readChunkedTail(
      client,
      bucket,
      location,
      source,
      new Set(indexed.map((record) => record.file)),
      indexed.at(-1)?.file,
    );
    const present = options.checkPresence
      ? await presentInS3(client, bucket, location, source, indexed)
      : indexed;
    binlogs.set(source, [...present, ...tail]);
  }
  return binlogs;
}
