import { createHash } from "node:crypto";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";

/** Writes a manifest as JSON with its SHA-256 checksum, so S3 refuses a body damaged in transit. */
export async function putJson(client: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  const body = JSON.stringify(value, null, 2);
  await client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: "application/json",
      ChecksumSHA256: createHash("sha256").update(body).digest("base64"),
    }),
  );
}
