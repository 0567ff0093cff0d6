import { createHash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";

/** Bodies above this go up in parts of this size (S3's smallest part but the last is 5 MiB). */
export const WHOLE_OBJECT_PART_BYTES = 8 * 1024 * 1024;

/**
 * Stores `body` as one object that exists whole or not at all, every byte checked by S3 against
 * the SHA-256 sent with it: one PutObject up to `partBytes`, a multipart upload above (parts of
 * `partBytes`, each with its checksum, completed at once, aborted on any failure). A single
 * transaction can make a binlog chunk of hundreds of MiB: one PUT of that is slow to retry, and
 * past 5 GiB impossible (S3 User Guide, "Uploading objects": a single PUT holds at most 5 GB).
 */
export async function putWholeObject(
  client: S3Client,
  bucket: string,
  key: string,
  body: Buffer,
  { partBytes = WHOLE_OBJECT_PART_BYTES, contentType = "application/octet-stream" } = {},
): Promise<void> {
  const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("base64");
  if (body.length <= partBytes) {
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        ChecksumSHA256: sha256(body),
      }),
    );
    return;
  }
  const created = await client.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: contentType,
      ChecksumAlgorithm: "SHA256",
    }),
  );
  const uploadId = created.UploadId;
  if (!uploadId) throw new Error(`S3 returned no upload id for ${key}`);
  try {
    const parts: { PartNumber: number; ETag: string; ChecksumSHA256: string }[] = [];
    for (let at = 0, partNumber = 1; at < body.length; at += partBytes, partNumber++) {
      const part = body.subarray(at, at + partBytes);
      const checksum = sha256(part);
      const uploaded = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: part,
          ChecksumSHA256: checksum,
        }),
      );
      parts.push({ PartNumber: partNumber, ETag: uploaded.ETag ?? "", ChecksumSHA256: checksum });
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (error) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
      .catch(() => undefined);
    throw error;
  }
}
