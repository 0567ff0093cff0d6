import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
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

function cacheFile(config: Pick<AgentConfig, "stateDir">, secretId: string): string {
  const name = createHash("sha256").update(secretId).digest("hex").slice(0, 32);
  return path.join(config.stateDir, "secret-cache", `${name}.json`);
}

function readCached(config: AgentConfig, secretId: string): DatabaseCredentials | undefined {
  if (config.secretCacheSeconds === 0) return undefined;
  try {
    const cached = JSON.parse(readFileSync(cacheFile(config, secretId), "utf8")) as {
      secretId: string;
      fetchedAt: number;
      username: string;
      password: string;
    };
    const fresh = Date.now() - cached.fetchedAt < config.secretCacheSeconds * 1000;
    if (cached.secretId !== secretId || !fresh) return undefined;
    return { username: cached.username, password: cached.password };
  } catch {
    return undefined;
  }
}

function writeCached(config: AgentConfig, secretId: string, credentials: DatabaseCredentials): void {
  if (config.secretCacheSeconds === 0) return;
  const file = cacheFile(config, secretId);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}`;
  writeFileSync(temporary, JSON.stringify({ secretId, fetchedAt: Date.now(), ...credentials }), {
    mode: 0o600,
  });
  renameSync(temporary, file);
}

/** Forgets a cached secret (the server refused it). */
export function forgetCachedSecret(config: AgentConfig, secretId: string): void {
  rmSync(cacheFile(config, secretId), { force: true });
}

/**
 * Credentials of one cluster user: from the host's cache while it is younger than
 * `secretCacheSeconds` (a run a minute would otherwise cost a Secrets Manager and a KMS request
 * each), else from Secrets Manager. `fresh` skips the cache, for when the server refused it.
 */
export async function fetchCredentials(
  config: AgentConfig,
  secretId: string,
  { fresh = false } = {},
): Promise<DatabaseCredentials & { readonly cached: boolean }> {
  const cached = fresh ? undefined : readCached(config, secretId);
  if (cached) return { ...cached, cached: true };
  let credentials: DatabaseCredentials;
  try {
    const result = await secretsClient(config).send(new GetSecretValueCommand({ SecretId: secretId }));
    if (!result.SecretString) throw configError(`secret ${secretId} has no string value`);
    credentials = parseCredentials(result.SecretString, secretId);
  } catch (error) {
    if (error instanceof RewindError) throw error;
    throw new RewindError(
      ErrorNames.credentials,
      `cannot read secret ${secretId} from Secrets Manager: ${(error as Error).message}; check the instance role and the secret id in the config`,
    );
  }
  writeCached(config, secretId, credentials);
  return { ...credentials, cached: false };
}
