import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

/**
 * Every key under `prefix` (and, with a delimiter, the common prefixes), page by page. With
 * `startAfter`, only keys after it: a push reads what is new without listing history.
 */
export async function listKeys(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: { readonly delimiter?: string; readonly startAfter?: string } = {},
): Promise<{ keys: string[]; prefixes: string[] }> {
  const { objects, prefixes } = await listObjects(client, bucket, prefix, options);
  return { keys: objects.map((object) => object.key), prefixes };
}

/** As listKeys, with each object's size. */
export async function listObjects(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: { readonly delimiter?: string; readonly startAfter?: string } = {},
): Promise<{ objects: { key: string; size: number }[]; prefixes: string[] }> {
  const objects: { key: string; size: number }[] = [];
  const prefixes: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        Delimiter: options.delimiter,
        ...(token
          ? { ContinuationToken: token }
          : options.startAfter
            ? { StartAfter: options.startAfter }
            : {}),
      }),
    );
    objects.push(...(page.Contents ?? []).map((object) => ({ key: object.Key!, size: object.Size ?? 0 })));
    prefixes.push(...(page.CommonPrefixes ?? []).map((common) => common.Prefix!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { objects, prefixes };
}

export async function readText(client: S3Client, bucket: string, key: string): Promise<string> {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
}

/**
 * The object's text, or undefined when it does not exist. S3 answers a GET of a missing key with
 * 403, not 404, to a caller that may not list the whole bucket (a host may list only its
 * cluster's prefix), so a 403 is settled by listing the key itself: absent means missing; present
 * means the caller truly may not read it, and the error stands.
 */
export async function readTextIfPresent(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<string | undefined> {
  try {
    return await readText(client, bucket, key);
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === "NoSuchKey" || name === "NotFound") return undefined;
    if (name !== "AccessDenied") throw error;
    const { keys } = await listKeys(client, bucket, key);
    if (!keys.includes(key)) return undefined;
    throw error;
  }
}
