import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SFNClient } from "@aws-sdk/client-sfn";
import type { AgentConfig } from "./config.js";

/** AWS clients are built here only, so the sandbox can point them at its stand-ins. */
export function s3Client(config: Pick<AgentConfig, "region" | "s3Endpoint">): S3Client {
  return new S3Client({
    region: config.region,
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint, forcePathStyle: true } : {}),
    // Our own SHA-256 part checksums are sent explicitly; no extra CRC on every request.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 5,
  });
}

export function secretsClient(
  config: Pick<AgentConfig, "region" | "secretsManagerEndpoint">,
): SecretsManagerClient {
  return new SecretsManagerClient({
    region: config.region,
    ...(config.secretsManagerEndpoint ? { endpoint: config.secretsManagerEndpoint } : {}),
  });
}

export function sfnClient(config: Pick<AgentConfig, "region" | "sfnEndpoint">): SFNClient {
  return new SFNClient({
    region: config.region,
    ...(config.sfnEndpoint ? { endpoint: config.sfnEndpoint } : {}),
  });
}
