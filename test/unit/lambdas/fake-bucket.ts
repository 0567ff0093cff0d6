import { createHash } from "node:crypto";
import {
  DeleteObjectsCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import {
  BINLOG_CHUNK_FORMAT_VERSION,
  type BinlogChunkManifest,
  encodeChunkObject,
} from "../../../core/binlog/chunk.js";
import { type BinlogManifest, recordOf } from "../../../core/binlog/manifest.js";
import {
  backupManifestKey,
  binlogChunkKey,
  binlogIndexChunkKey,
  binlogManifestKey,
  binlogObjectKey,
  segmentKey,
} from "../../../core/layout.js";
import {
  type BackupManifest,
  ENCRYPTION_SUITE,
  type EncryptionRecord,
  type SegmentRecord,
} from "../../../core/manifest.js";
import { chunkOf } from "../../../core/store/binlog-index.js";
import { compositeChecksum } from "../../../core/store/segment-check.js";

export const BUCKET = "rewind-backups";

/** A single-part object's ETag, as S3 makes it: the quoted MD5 of its body. */
const etagOf = (body: string | Buffer) => `"${createHash("md5").update(body).digest("hex")}"`;
export const CLUSTER = "orders";
export const SOURCE = "1-db1";
const location = { cluster: CLUSTER };

interface StoredObject {
  /** Text, or the bytes of a binary object (a binlog chunk). */
  body: string | Buffer;
  /** What S3 reports for a multipart object; tests change it to simulate damage. */
  size: number;
  parts?: SegmentRecord["parts"];
}

/**
 * An in-memory bucket behind aws-sdk-client-mock: List/Get/GetObjectAttributes/Put/DeleteObjects
 * answer from a Map, and every request stays inspectable for its shape.
 */
export function fakeBucket() {
  const objects = new Map<string, StoredObject>();
  const s3 = mockClient(S3Client);
  s3.on(ListObjectsV2Command).callsFake((input) => {
    const prefix = input.Prefix ?? "";
    const keys = [...objects.keys()].filter((key) => key.startsWith(prefix)).sort();
    if (!input.Delimiter)
      return {
        Contents: keys.map((Key) => ({ Key, Size: objects.get(Key)!.size })),
        IsTruncated: false,
      };
    const common = new Set<string>();
    const contents: string[] = [];
    for (const key of keys) {
      const rest = key.slice(prefix.length);
      const cut = rest.indexOf(input.Delimiter);
      if (cut >= 0) common.add(prefix + rest.slice(0, cut + 1));
      else contents.push(key);
    }
    return {
      Contents: contents.map((Key) => ({ Key })),
      CommonPrefixes: [...common].map((Prefix) => ({ Prefix })),
      IsTruncated: false,
    };
  });
  s3.on(GetObjectCommand).callsFake((input) => {
    const object = objects.get(input.Key!);
    if (!object) throw Object.assign(new Error("The specified key does not exist."), { name: "NoSuchKey" });
    // Rewind reads manifests with transformToString and chunks (whole or a Range) with
    // transformToByteArray, the parts of a response body it uses.
    const whole = Buffer.from(object.body);
    const range = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? "");
    const bytes = range ? whole.subarray(Number(range[1]), Number(range[2]) + 1) : whole;
    return {
      Body: {
        transformToString: async () => bytes.toString("utf8"),
        transformToByteArray: async () => new Uint8Array(bytes),
      } as never,
      ETag: etagOf(object.body),
    };
  });
  s3.on(GetObjectAttributesCommand).callsFake((input) => {
    const object = objects.get(input.Key!);
    if (!object) throw Object.assign(new Error("The specified key does not exist."), { name: "NoSuchKey" });
    return {
      ObjectSize: object.size,
      Checksum: object.parts ? { ChecksumSHA256: compositeChecksum(object.parts) } : undefined,
      ObjectParts: object.parts
        ? {
            TotalPartsCount: object.parts.length,
            Parts: object.parts.map((part) => ({
              PartNumber: part.partNumber,
              Size: part.size,
              ChecksumSHA256: part.checksumSha256,
            })),
          }
        : undefined,
    };
  });
  s3.on(PutObjectCommand).callsFake((input) => {
    const body = String(input.Body);
    objects.set(input.Key!, { body, size: body.length });
    return { ETag: etagOf(body) };
  });
  // One version a key (`v1`): enough for retention, which lists versions and deletes them by id.
  s3.on(ListObjectVersionsCommand).callsFake((input) => {
    const prefix = input.Prefix ?? "";
    const keys = [...objects.keys()].filter((key) => key.startsWith(prefix)).sort();
    return {
      Versions: keys.map((Key) => ({ Key, VersionId: "v1", IsLatest: true, Size: objects.get(Key)!.size })),
      IsTruncated: false,
    };
  });
  s3.on(DeleteObjectsCommand).callsFake((input) => {
    for (const { Key } of input.Delete?.Objects ?? []) objects.delete(Key!);
    return { Deleted: input.Delete?.Objects };
  });
  return { s3, objects, client: new S3Client({ region: "us-east-1" }) };
}

const sha = (text: string) => createHash("sha256").update(text).digest();
const day = (n: number) => `2026-11-${String(n).padStart(2, "0")}T03:30:00.000Z`;
export const binlogFile = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;

function storedObject(key: string, size: number): SegmentRecord {
  const parts = [
    { partNumber: 1, size: size - 10, checksumSha256: sha(`${key}#1`).toString("base64") },
    { partNumber: 2, size: 10, checksumSha256: sha(`${key}#2`).toString("base64") },
  ];
  return { index: 0, key, size, sha256: sha(key).toString("hex"), partSize: size - 10, parts };
}

const encryption: EncryptionRecord = {
  suite: ENCRYPTION_SUITE,
  frameLength: 1 << 20,
  keyId: "raw-aes:rewind/test",
  context: {},
};

/**
 * A complete full backup taken on day d at position 100 of binlog d (GTID 0-1-(10d+3)); with
 * `parent`, an incremental on it at hour `hour` of that day (position 100·hour, GTID 0-1-(10d+hour)).
 */
export function putBackup(
  objects: Map<string, StoredObject>,
  d: number,
  incremental?: { parent: BackupManifest; hour: number },
): BackupManifest {
  if (incremental) return putIncremental(objects, d, incremental.parent, incremental.hour);
  const backupId = `202611${String(d).padStart(2, "0")}T033000Z-full-db1`;
  const segment = storedObject(segmentKey(location, backupId, 0), 5000 + d);
  const manifest: BackupManifest = {
    formatVersion: 1,
    cluster: CLUSTER,
    backupId,
    type: "full",
    parentBackupId: null,
    host: "db1",
    engine: { name: "mariadb", version: "10.11.19-MariaDB" },
    tool: { name: "mariabackup", version: "10.11.19" },
    serverId: 1,
    serverUuid: null,
    binlogSource: SOURCE,
    startTime: day(d).replace("03:30", "03:15"),
    endTime: day(d),
    binlog: { file: binlogFile(d), position: 100, gtidSet: `0-1-${10 * d + 3}` },
    lsn: { fromLsn: "0", toLsn: "100", lastLsn: "100" },
    rawBytes: 10_000,
    storedBytes: segment.size,
    storedSha256: sha(backupId).toString("hex"),
    segments: [segment],
    compression: { algorithm: "zstd", level: 3 },
    encryption,
    myCnf: "",
    agentVersion: "0.1.0",
  };
  objects.set(segment.key, { body: "x".repeat(16), size: segment.size, parts: segment.parts });
  objects.set(backupManifestKey(location, backupId), { body: JSON.stringify(manifest), size: 1 });
  return manifest;
}

function putIncremental(
  objects: Map<string, StoredObject>,
  d: number,
  parent: BackupManifest,
  hour: number,
): BackupManifest {
  const base = putBackup(new Map(), d);
  const time = day(d).replace("03:30", `${String(hour).padStart(2, "0")}:30`);
  const backupId = `202611${String(d).padStart(2, "0")}T${String(hour).padStart(2, "0")}3000Z-incremental-db1`;
  const segment = storedObject(segmentKey(location, backupId, 0), 500 + hour);
  const manifest: BackupManifest = {
    ...base,
    backupId,
    type: "incremental",
    parentBackupId: parent.backupId,
    startTime: time.replace(":30:", ":15:"),
    endTime: time,
    binlog: { file: binlogFile(d), position: 100 * hour, gtidSet: `0-1-${10 * d + hour}` },
    lsn: { fromLsn: parent.lsn.toLsn, toLsn: String(Number(parent.lsn.toLsn) + 10), lastLsn: "0" },
    storedBytes: segment.size,
    storedSha256: sha(backupId).toString("hex"),
    segments: [segment],
  };
  objects.set(segment.key, { body: "x".repeat(16), size: segment.size, parts: segment.parts });
  objects.set(backupManifestKey(location, backupId), { body: JSON.stringify(manifest), size: 1 });
  return manifest;
}

/** Binlog n: GTIDs 0-1-(10n+1 … 10n+10), events through 23:59 of day n. */
export function putBinlog(
  objects: Map<string, StoredObject>,
  n: number,
  { indexed = true } = {},
): BinlogManifest {
  const stored = storedObject(binlogObjectKey(location, SOURCE, binlogFile(n)), 2000 + n);
  const manifest: BinlogManifest = {
    formatVersion: 2,
    cluster: CLUSTER,
    engine: "mariadb",
    source: SOURCE,
    file: binlogFile(n),
    previousFile: n > 1 ? binlogFile(n - 1) : null,
    serverVersion: "10.11.19-MariaDB",
    size: 4000,
    sha256: sha(`binlog${n}`).toString("hex"),
    firstEventTime: day(n).replace("03:30", "00:00"),
    lastEventTime: day(n).replace("03:30", "23:59"),
    lastCommitTime: null,
    gtidsBefore: `0-1-${10 * n}`,
    firstGtid: `0-1-${10 * n + 1}`,
    lastGtid: `0-1-${10 * n + 10}`,
    gtidsAdded: `0-1-${10 * n + 10}`,
    transactions: 10,
    stored,
    storedSha256: sha(`stored${n}`).toString("hex"),
    compression: { algorithm: "zstd", level: 3 },
    encryption,
    shippedAt: day(n + 1),
    agentVersion: "0.1.0",
  };
  objects.set(stored.key, { body: "y".repeat(16), size: stored.size, parts: stored.parts });
  objects.set(binlogManifestKey(location, SOURCE, binlogFile(n)), {
    body: JSON.stringify(manifest),
    size: 1,
  });
  if (!indexed) return manifest;
  // As binlog-push does: the file's record goes into its source's index.
  const indexKey = binlogIndexChunkKey(location, SOURCE, chunkOf(manifest.file));
  const chunk = objects.has(indexKey)
    ? JSON.parse(objects.get(indexKey)!.body.toString())
    : { formatVersion: 1, source: SOURCE, records: [] };
  chunk.records.push(recordOf(manifest));
  objects.set(indexKey, { body: JSON.stringify(chunk), size: 1 });
  return manifest;
}

/**
 * Chunk `chunk` of `file` from `source`, as binlog-stream ships it: the file's GTIDs before it are
 * `before`, and up to this chunk's end it adds `added` (as `0-1-n`), shipped at `shippedAt`.
 */
export function putChunk(
  objects: Map<string, StoredObject>,
  {
    source,
    file,
    chunk,
    before,
    added,
    shippedAt,
  }: {
    source: string;
    file: string;
    chunk: number;
    before: string;
    added: string;
    shippedAt: string;
  },
): void {
  const payload = Buffer.from("z".repeat(16));
  const manifest: BinlogChunkManifest = {
    formatVersion: BINLOG_CHUNK_FORMAT_VERSION,
    cluster: CLUSTER,
    engine: "mariadb",
    source,
    file,
    chunk,
    previousFile: null,
    serverVersion: "10.11.19-MariaDB",
    startOffset: chunk * 1000,
    endOffset: (chunk + 1) * 1000,
    sha256: sha(`${file}#${chunk}`).toString("hex"),
    fileGtidsBefore: before,
    gtidsAdded: added,
    firstGtid: null,
    lastGtid: added,
    chunkFirstGtid: null,
    firstEventTime: shippedAt,
    lastEventTime: shippedAt,
    lastCommitTime: null,
    transactions: chunk + 1,
    chunkTransactions: 1,
    storedBytes: payload.length,
    storedSha256: createHash("sha256").update(payload).digest("hex"),
    compression: { algorithm: "zstd", level: 3 },
    encryption,
    shippedAt,
    agentVersion: "0.1.0",
  };
  const body = encodeChunkObject(manifest, payload);
  objects.set(binlogChunkKey(location, source, file, chunk * 1000, (chunk + 1) * 1000), {
    body,
    size: body.length,
  });
}
