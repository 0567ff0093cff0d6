import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import {
  type AccountName,
  type AccountsSecret,
  accountFrom,
  parseAccountsSecret,
} from "../core/contracts/accounts.js";
import { configError, ErrorNames, RewindError } from "../core/errors.js";
import { secretsClient } from "./clients.js";
import { type AgentConfig, accountsSecretId } from "./config.js";

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

function readCached(config: AgentConfig, secretId: string): string | undefined {
  if (config.secretCacheSeconds === 0) return undefined;
  try {
    const cached = JSON.parse(readFileSync(cacheFile(config, secretId), "utf8")) as {
      secretId: string;
      fetchedAt: number;
      text: unknown;
    };
    const fresh = Date.now() - cached.fetchedAt < config.secretCacheSeconds * 1000;
    if (cached.secretId !== secretId || !fresh || typeof cached.text !== "string") return undefined;
    return cached.text;
  } catch {
    return undefined;
  }
}

function writeCached(config: AgentConfig, secretId: string, text: string): void {
  if (config.secretCacheSeconds === 0) return;
  const file = cacheFile(config, secretId);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}`;
  writeFileSync(temporary, JSON.stringify({ secretId, fetchedAt: Date.now(), text }), { mode: 0o600 });
  renameSync(temporary, file);
}

/** Forgets a cached secret (the server refused it). */
export function forgetCachedSecret(config: AgentConfig, secretId: string): void {
  rmSync(cacheFile(config, secretId), { force: true });
}

/**
 * Secrets Manager's answer when the secret, or the version asked for, does not exist (API
 * reference, GetSecretValue, Errors: ResourceNotFoundException).
 */
export class SecretNotFound extends RewindError {
  constructor(
    readonly secretId: string,
    version?: SecretVersion,
  ) {
    super(
      ErrorNames.credentials,
      version
        ? `secret ${secretId} has no version ${version.VersionId ?? version.VersionStage}`
        : `secret ${secretId} does not exist in Secrets Manager`,
    );
  }
}

/** A version of a secret other than AWSCURRENT: by id, by stage, or both. */
export interface SecretVersion {
  readonly VersionId?: string;
  readonly VersionStage?: string;
}

/**
 * A secret's text: from the host's root-only cache while it is younger than `secretCacheSeconds`
 * (a run a minute would otherwise cost a Secrets Manager and a KMS request each), else from
 * Secrets Manager. `fresh` skips the cache, for when the server refused what it held.
 */
async function fetchSecretText(
  config: AgentConfig,
  secretId: string,
  fresh: boolean,
  version?: SecretVersion,
): Promise<{ text: string; cached: boolean }> {
  // Only AWSCURRENT is cached: another version is asked for during a rotation, at its moment.
  const cached = fresh || version ? undefined : readCached(config, secretId);
  if (cached !== undefined) return { text: cached, cached: true };
  let text: string;
  try {
    const result = await secretsClient(config).send(
      new GetSecretValueCommand({ SecretId: secretId, ...(version ?? {}) }),
    );
    if (!result.SecretString) throw configError(`secret ${secretId} has no string value`);
    text = result.SecretString;
  } catch (error) {
    if (error instanceof RewindError) throw error;
    if ((error as Error).name === "ResourceNotFoundException") throw new SecretNotFound(secretId, version);
    throw new RewindError(
      ErrorNames.credentials,
      `cannot read secret ${secretId} from Secrets Manager: ${(error as Error).message}; check the instance role and the secret id in the config`,
    );
  }
  if (!version) writeCached(config, secretId, text);
  return { text, cached: false };
}

/**
 * Credentials from a secret of one user, `{"username", "password"}`: how Rewind stored them
 * before one secret held every account (config `secrets.backup|restore|repl`, still read).
 */
export async function fetchCredentials(
  config: AgentConfig,
  secretId: string,
  { fresh = false } = {},
): Promise<DatabaseCredentials & { readonly cached: boolean }> {
  const { text, cached } = await fetchSecretText(config, secretId, fresh);
  return { ...parseCredentials(text, secretId), cached };
}

/** The cluster's accounts secret (core/contracts/accounts.ts), parsed. */
export async function fetchAccountsSecret(
  config: AgentConfig,
  { fresh = false, version }: { fresh?: boolean; version?: SecretVersion } = {},
): Promise<AccountsSecret & { readonly cached: boolean }> {
  const secretId = accountsSecretId(config);
  const { text, cached } = await fetchSecretText(config, secretId, fresh, version);
  return { ...parseAccountsSecret(text, secretId), cached };
}

/** One account's credentials from the cluster's accounts secret. */
export async function fetchAccount(
  config: AgentConfig,
  account: AccountName,
  { fresh = false, version }: { fresh?: boolean; version?: SecretVersion } = {},
): Promise<DatabaseCredentials & { readonly cached: boolean }> {
  const secret = await fetchAccountsSecret(config, { fresh, ...(version ? { version } : {}) });
  const credentials = accountFrom(secret, account);
  if (!credentials) {
    throw configError(
      `secret ${accountsSecretId(config)} has no ${account} account: add "${account}": {"username": "…", "password": "…"}, or keep the "seed" the stack generated`,
    );
  }
  return { ...credentials, cached: secret.cached };
}
