import { createHash } from "node:crypto";
import {
  GetObjectAttributesCommand,
  type GetObjectAttributesCommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { PartChecksum, SegmentRecord } from "../manifest.js";

/** S3's checksum of a multipart object: SHA-256 over the parts' binary SHA-256s, then "-<parts>". */
export function compositeChecksum(parts: readonly PartChecksum[]): string {
  const digests = parts.map((part) => Buffer.from(part.checksumSha256, "base64"));
  return `${createHash("sha256").update(Buffer.concat(digests)).digest("base64")}-${parts.length}`;
}

/**
 * Compares each stored object's (a backup segment's, a binlog's) size, parts and part checksums in S3 with the manifest, without
 * downloading it. Returns one line per problem; none means the objects are as the backup left them.
 */
export async function checkStoredObjects(
  client: S3Client,
  bucket: string,
  segments: readonly SegmentRecord[],
): Promise<string[]> {
  const problems: string[] = [];
  for (const segment of segments) {
    let attributes: GetObjectAttributesCommandOutput;
    try {
      attributes = await client.send(
        new GetObjectAttributesCommand({
          Bucket: bucket,
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
    const expected =
      segment.upload === "single" ? segment.parts[0]!.checksumSha256 : compositeChecksum(segment.parts);
    const stored = attributes.Checksum?.ChecksumSHA256;
    if (stored && stored !== expected)
      problems.push(`${segment.key}: checksum ${stored} in S3, ${expected} from the manifest`);
    const parts = attributes.ObjectParts?.Parts ?? [];
    if (
      segment.upload !== "single" &&
      attributes.ObjectParts &&
      attributes.ObjectParts.TotalPartsCount !== segment.parts.length
    ) {
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
