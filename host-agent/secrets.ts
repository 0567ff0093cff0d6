import { GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { configError, ErrorNames, RewindError } from "../core/errors.js";
import { secretsClient } from "./clients.js";
import type { AgentConfig } from "./config.js";

export interface DatabaseCredentials {
  readonly username: string;
  readonly password: string;
}

function parseCredentials(text: string, secretId: string): DatabaseCredentials {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw configError(`secret ${secretId} is not JSON; store {"username": "…", "password": "…"}`);
  }
  const { username, password } = (value ?? {}) as Record<string, unknown>;
  if (typeof username !== "string" || typeof password !== "string" || username === "") {
    throw configError(`secret ${secretId} must hold {"username": "…", "password": "…"}`);
  }
  return { username, password };
}

/** Credentials of one cluster user, from Secrets Manager. */
export async function fetchCredentials(config: AgentConfig, secretId: string): Promise<DatabaseCredentials> {
  try {
    const result = await secretsClient(config).send(new GetSecretValueCommand({ SecretId: secretId }));
    if (!result.SecretString) throw configError(`secret ${secretId} has no string value`);
    return parseCredentials(result.SecretString, secretId);
  } catch (error) {
    if (error instanceof RewindError) throw error;
    throw new RewindError(
      ErrorNames.credentials,
      `cannot read secret ${secretId} from Secrets Manager: ${(error as Error).message}; check the instance role and the secret id in the config`,
    );
  }
}
