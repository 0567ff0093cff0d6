import { createHmac } from "node:crypto";
import { z } from "zod";
import { configError } from "../errors.js";
import { DEFAULT_DEPLOYMENT, deploymentNames } from "./deployment.js";

/**
 * The database accounts Rewind uses on a cluster, all in one Secrets Manager secret,
 * `<deployment>/<cluster>/accounts` (`rewind/<cluster>/accounts` by default; the stack creates it; `users ensure` makes the servers match it):
 *
 * ```json
 * { "backup":      { "username": "rewind_backup", "password": "…" },
 *   "replication": { "username": "rewind_repl",   "password": "…" },
 *   "admin":       { "username": "rewind_admin",  "password": "…" } }
 * ```
 *
 * CloudFormation can generate one random string per secret, not three: the secret the stack
 * creates holds the usernames and a generated `seed`, and an account without a `password` of its
 * own has one derived from the seed (HMAC-SHA256 of the account's name). Rotation writes explicit
 * passwords; an operator may too. The derivation is one-way, so knowing one account's password
 * says nothing of another's.
 */
export const ACCOUNTS = {
  /** Takes backups and streams binlogs (core/privileges.ts lists its grants). */
  backup: { username: "rewind_backup", host: "localhost" },
  /** What replicas log in to their source with, from any host. */
  replication: { username: "rewind_repl", host: "%" },
  /** Restores into a live server, points a restored host at its source, runs `users ensure`. */
  admin: { username: "rewind_admin", host: "localhost" },
} as const;

export type AccountName = keyof typeof ACCOUNTS;
export const ACCOUNT_NAMES = Object.keys(ACCOUNTS) as AccountName[];

/** The secret's name for a cluster; the hosts' policy lets them read `<deployment>/<cluster>/*`. */
export function accountsSecretName(cluster: string, deployment: string = DEFAULT_DEPLOYMENT): string {
  return deploymentNames(deployment).accountsSecret(cluster);
}

const Entry = z.object({
  username: z.string().min(1).max(32),
  password: z.string().min(8).max(256).optional(),
});

export const AccountsSecretSchema = z
  .object({
    seed: z.string().min(32).optional(),
    backup: Entry.optional(),
    replication: Entry.optional(),
    admin: Entry.optional(),
  })
  .loose();
export type AccountsSecret = z.infer<typeof AccountsSecretSchema>;

export interface AccountCredentials {
  readonly username: string;
  readonly password: string;
}

/** What the stack stores at creation: the usernames, and CloudFormation generates `seed`. */
export function initialAccountsTemplate(): Record<string, unknown> {
  return Object.fromEntries(ACCOUNT_NAMES.map((name) => [name, { username: ACCOUNTS[name].username }]));
}
/** The key CloudFormation's GenerateSecretString fills (and its length). */
export const ACCOUNTS_SEED = { key: "seed", length: 48 } as const;

/** A password derived from the seed: 32 characters of base64url (safe in option files and SQL). */
export function derivedPassword(seed: string, account: AccountName): string {
  return createHmac("sha256", seed).update(`rewind-account:${account}`).digest("base64url").slice(0, 32);
}

/**
 * Parses the secret's text; `describe` names the secret in errors. Never echoes the value.
 */
export function parseAccountsSecret(text: string, describe: string): AccountsSecret {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw configError(`secret ${describe} is not JSON; it must hold ${SHAPE}`);
  }
  const parsed = AccountsSecretSchema.safeParse(value);
  if (!parsed.success) {
    const where = parsed.error.issues.map((issue) => issue.path.join(".") || "(top)").join(", ");
    throw configError(`secret ${describe} does not hold ${SHAPE} (check ${where})`);
  }
  return parsed.data;
}

const SHAPE =
  '{"backup": {"username": "…", "password": "…"}, "replication": {…}, "admin": {…}} (a password may be left out when the secret has the "seed" the stack generated)';

/** One account's credentials from the secret, or undefined when the secret does not name it. */
export function accountFrom(secret: AccountsSecret, account: AccountName): AccountCredentials | undefined {
  const entry = secret[account];
  const username = entry?.username ?? (secret.seed ? ACCOUNTS[account].username : undefined);
  if (!username) return undefined;
  const password = entry?.password ?? (secret.seed ? derivedPassword(secret.seed, account) : undefined);
  if (password === undefined) return undefined;
  return { username, password };
}
