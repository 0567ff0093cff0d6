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

/**
 * What one listing says of a cluster's backups: the manifest keys of the complete ones (oldest
 * first: backup ids sort by time) and the prefixes of those without a manifest. Presence comes
 * from the listing, never a GET of a missing manifest: without an unconditioned s3:ListBucket
 * that answers 403, not 404. Segment names cost a LIST page per 1,000.
 */
export async function listBackups(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
): Promise<{ manifestKeys: string[]; incompleteBackups: string[] }> {
  const { keys } = await listKeys(client, bucket, backupsPrefix(location));
  const present = new Set(keys);
  const prefixes = [...new Set(keys.map((key) => key.slice(0, key.lastIndexOf("/") + 1)))].sort();
  return {
    manifestKeys: prefixes.map((prefix) => `${prefix}manifest.json`).filter((key) => present.has(key)),
    incompleteBackups: prefixes.filter((prefix) => !present.has(`${prefix}manifest.json`)),
  };
}

async function readBackupManifestAt(client: S3Client, bucket: string, key: string): Promise<BackupManifest> {
  return parseBackupManifest(await readText(client, bucket, key), `s3://${bucket}/${key}`);
}

/** The complete full and incremental backups (manifest present), oldest first, and the incomplete ones. */
export async function readBackups(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
): Promise<Pick<Catalog, "backups" | "incompleteBackups">> {
  const { manifestKeys, incompleteBackups } = await listBackups(client, bucket, location);
  const backups: BackupManifest[] = [];
  for (const key of manifestKeys) backups.push(await readBackupManifestAt(client, bucket, key));
  return { backups, incompleteBackups };
}

/**
 * The newest complete backups, oldest first, read newest first until `enough` says the ones read
 * will do (a plan needs the newest backup before its target, not every one kept): a plan's
 * requests then do not grow with how many backups retention keeps. Reads them all when none will.
 */
export async function readNewestBackups(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  enough: (newestFirst: readonly BackupManifest[]) => boolean,
): Promise<BackupManifest[]> {
  const { manifestKeys } = await listBackups(client, bucket, location);
  const read: BackupManifest[] = [];
  for (const key of [...manifestKeys].reverse()) {
    read.push(await readBackupManifestAt(client, bucket, key));
    if (enough(read)) break;
  }
  return read.reverse();
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
