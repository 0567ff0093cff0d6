import { S3Client } from "@aws-sdk/client-s3";
import { SNSClient } from "@aws-sdk/client-sns";
import { SSMClient } from "@aws-sdk/client-ssm";

/**
 * Every AWS client the Lambdas use, built in one place. `REWIND_S3_ENDPOINT` points S3 at the
 * sandbox's stand-in; in AWS it is unset.
 */
let s3: S3Client | undefined;
let ssm: SSMClient | undefined;
let sns: SNSClient | undefined;

export function s3Client(): S3Client {
  const endpoint = process.env.REWIND_S3_ENDPOINT;
  s3 ??= new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {});
  return s3;
}

export function ssmClient(): SSMClient {
  ssm ??= new SSMClient({});
  return ssm;
}

export function snsClient(): SNSClient {
  sns ??= new SNSClient({});
  return sns;
}
