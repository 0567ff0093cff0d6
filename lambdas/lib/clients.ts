import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { SSMClient } from "@aws-sdk/client-ssm";

/**
 * Every AWS client the Lambdas use, built in one place. `REWIND_S3_ENDPOINT`,
 * `REWIND_SSM_ENDPOINT` and `REWIND_SECRETS_ENDPOINT` point them at the sandbox's stand-ins; in
 * AWS they are unset.
 */
let s3: S3Client | undefined;
let ssm: SSMClient | undefined;
let sns: SNSClient | undefined;
let secrets: SecretsManagerClient | undefined;

export function secretsClient(): SecretsManagerClient {
  const endpoint = process.env.REWIND_SECRETS_ENDPOINT;
  secrets ??= new SecretsManagerClient(endpoint ? { endpoint } : {});
  return secrets;
}

export function s3Client(): S3Client {
  const endpoint = process.env.REWIND_S3_ENDPOINT;
  s3 ??= new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {});
  return s3;
}

/**
 * SSM throttles SendCommand and GetCommandInvocation per account and Region (ThrottlingException):
 * a fleet's schedules start many at once, so the SDK's standard retries (exponential backoff with
 * jitter, ThrottlingException among the errors it retries) get more attempts than the default 3.
 */
export const SSM_MAX_ATTEMPTS = 8;

export function ssmClient(): SSMClient {
  const endpoint = process.env.REWIND_SSM_ENDPOINT;
  ssm ??= new SSMClient({ ...(endpoint ? { endpoint } : {}), maxAttempts: SSM_MAX_ATTEMPTS });
  return ssm;
}

export function snsClient(): SNSClient {
  sns ??= new SNSClient({});
  return sns;
}
