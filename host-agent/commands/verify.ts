import { Writable } from "node:stream";
import zlib from "node:zlib";
import { GetObjectAttributesCommand, type GetObjectAttributesCommandOutput } from "@aws-sdk/client-s3";
import { type Crc32, crc32 as jsCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { BackupManifest } from "../../core/manifest.js";
import { XbstreamReader, type XbstreamSummary } from "../../core/xbstream.js";
import { s3Client } from "../clients.js";
import type { AgentContext } from "../context.js";
import { dataKeyring } from "../encryption.js";
import { Progress } from "../log.js";
import { decodeStream } from "../restore/decode.js";
import { backupStream } from "../restore/download.js";
import { readBackupManifest } from "../s3/manifests.js";
import { compositeChecksum } from "../s3/segment-writer.js";

export interface VerifyResult {
  readonly backupId: string;
  readonly ok: boolean;
  readonly deep: boolean;
  readonly segments: number;
  readonly storedBytes: number;
  readonly problems: string[];
  readonly stream?: XbstreamSummary;
}

const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

/** Compares each segment object's size, parts and part checksums in S3 with the manifest. */
async function checkObjects(context: AgentContext, manifest: BackupManifest): Promise<string[]> {
  const client = s3Client(context.config);
  const problems: string[] = [];
  for (const segment of manifest.segments) {
    let attributes: GetObjectAttributesCommandOutput;
    try {
      attributes = await client.send(
        new GetObjectAttributesCommand({
          Bucket: context.config.bucket,
          Key: segment.key,
          ObjectAttributes: ["ObjectSize", "ObjectParts", "Checksum"],
          MaxParts: 10_000,
        }),
      );
    } catch (error) {
      problems.push(
        `${segment.key}: ${(error as { name?: string }).name === "NoSuchKey" ? "missing" : (error as Error).message}`,
      );
      continue;
    }
    if (attributes.ObjectSize !== segment.size) {
      problems.push(`${segment.key}: size ${attributes.ObjectSize} in S3, ${segment.size} in the manifest`);
    }
    const expected = compositeChecksum(segment.parts);
    const stored = attributes.Checksum?.ChecksumSHA256;
    if (stored && stored !== expected)
      problems.push(`${segment.key}: checksum ${stored} in S3, ${expected} from the manifest`);
    const parts = attributes.ObjectParts?.Parts ?? [];
    if (attributes.ObjectParts && attributes.ObjectParts.TotalPartsCount !== segment.parts.length) {
      problems.push(
        `${segment.key}: ${attributes.ObjectParts.TotalPartsCount} parts in S3, ${segment.parts.length} in the manifest`,
      );
    }
    for (const part of parts) {
      const recorded = segment.parts.find((p) => p.partNumber === part.PartNumber);
      if (!recorded) continue;
      if (part.Size !== recorded.size) {
        problems.push(
          `${segment.key} part ${part.PartNumber}: size ${part.Size} in S3, ${recorded.size} in the manifest`,
        );
      }
      if (part.ChecksumSHA256 && part.ChecksumSHA256 !== recorded.checksumSha256) {
        problems.push(`${segment.key} part ${part.PartNumber}: checksum differs from the manifest`);
      }
    }
  }
  return problems;
}

/** Downloads and re-hashes everything, decrypts it, and checks the zstd and xbstream framing. */
async function checkContent(context: AgentContext, manifest: BackupManifest): Promise<XbstreamSummary> {
  const reader = new XbstreamReader({ crc32: nativeCrc32 ?? jsCrc32 });
  const progress = new Progress(`verify ${manifest.backupId}`);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        reader.push(chunk);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  await decodeStream(backupStream(manifest), {
    client: s3Client(context.config),
    bucket: context.config.bucket,
    keyring: dataKeyring(context.config).keyring,
    concurrency: context.config.backup.uploadConcurrency,
    sink,
    onBytes: (bytes) => {
      progress.update(bytes);
      context.heartbeat();
    },
  });
  progress.done();
  const summary = reader.finish();
  if (summary.unterminated.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `the backup stream ends with files left open: ${summary.unterminated.join(", ")}`,
    );
  }
  return summary;
}

/** `rewind-agent verify --backup-id ID [--deep]`. A failed check is an error (VerifyFailed). */
export async function verify(context: AgentContext, backupId: string, deep: boolean): Promise<VerifyResult> {
  const manifest = await readBackupManifest(
    s3Client(context.config),
    context.config.bucket,
    context.location,
    backupId,
  );
  const problems = await checkObjects(context, manifest);
  let stream: XbstreamSummary | undefined;
  if (deep && problems.length === 0) {
    try {
      stream = await checkContent(context, manifest);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `backup ${backupId} failed verification: ${problems.join("; ")}`,
      problems.join("\n"),
    );
  }
  return {
    backupId,
    ok: true,
    deep,
    segments: manifest.segments.length,
    storedBytes: manifest.storedBytes,
    problems,
    ...(stream ? { stream } : {}),
  };
}
