import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { type BinlogManifest, binlogSequence, parseBinlogManifest } from "../binlog/manifest.js";
import {
  allBinlogsPrefix,
  backupsPrefix,
  binlogManifestKey,
  binlogsPrefix,
  type ClusterLocation,
} from "../layout.js";
import { type BackupManifest, parseBackupManifest } from "../manifest.js";

/** What S3 holds for a cluster: S3 is the truth, never a local cache. */
export interface Catalog {
  readonly backups: BackupManifest[];
  /** Backup prefixes with segments but no manifest: never complete, never used. */
  readonly incompleteBackups: string[];
  readonly binlogs: ReadonlyMap<string, BinlogManifest[]>;
}

async function listKeys(client: S3Client, bucket: string, prefix: string, delimiter?: string) {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        Delimiter: delimiter,
        ContinuationToken: token,
      }),
    );
    keys.push(...(page.Contents ?? []).map((object) => object.Key!));
    prefixes.push(...(page.CommonPrefixes ?? []).map((common) => common.Prefix!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { keys, prefixes };
}

async function readText(client: S3Client, bucket: string, key: string): Promise<string> {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
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
  try {
    return parseBinlogManifest(await readText(client, bucket, key), `s3://${bucket}/${key}`);
  } catch (error) {
    if ((error as { name?: string }).name === "NoSuchKey") return undefined;
    throw error;
  }
}

export async function listShippedBinlogs(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
): Promise<BinlogManifest[]> {
  const { keys } = await listKeys(client, bucket, binlogsPrefix(location, source));
  const manifests = await Promise.all(
    keys
      .filter((key) => key.endsWith(".json"))
      .map(async (key) => parseBinlogManifest(await readText(client, bucket, key), `s3://${bucket}/${key}`)),
  );
  return manifests.sort((a, b) => binlogSequence(a.file) - binlogSequence(b.file));
}

export async function readCatalog(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
): Promise<Catalog> {
  const backups: BackupManifest[] = [];
  const incompleteBackups: string[] = [];
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
  const binlogs = new Map<string, BinlogManifest[]>();
  const root = allBinlogsPrefix(location);
  for (const prefix of (await listKeys(client, bucket, root, "/")).prefixes) {
    const source = prefix.slice(root.length, -1);
    binlogs.set(source, await listShippedBinlogs(client, bucket, location, source));
  }
  return { backups, incompleteBackups, binlogs };
}
