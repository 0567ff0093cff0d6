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
  const keys: string[] = [];
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
    keys.push(...(page.Contents ?? []).map((object) => object.Key!));
    prefixes.push(...(page.CommonPrefixes ?? []).map((common) => common.Prefix!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { keys, prefixes };
}

export async function readText(client: S3Client, bucket: string, key: string): Promise<string> {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return object.Body!.transformToString();
}
