import { ACCOUNTS, accountFrom } from "../../core/contracts/accounts.js";
import type { RotateStep } from "../../core/contracts/agent-document.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { accountsSecretId } from "../config.js";
import { type AgentContext, asRestoreUser, loginRefusal } from "../context.js";
import { readServerRole } from "../engines/engine.js";
import { log } from "../log.js";
import { fetchAccountsSecret, type SecretVersion } from "../secrets.js";
import { type EnsureResult, ensureAccounts } from "./ensure.js";

export type { RotateStep };

export interface RotateResult {
  readonly step: RotateStep;
  readonly role: string;
  /** What set (or rollback) changed on this server. */
  readonly accounts?: EnsureResult;
  readonly sourcePassword?: "changed" | "unchanged";
  /** What test logged in with. */
  readonly tested?: readonly string[];
}

/**
 * One host's part of a rotation of the accounts secret, as the rotation Lambda drives it over
 * SSM (lambdas/lib/rotate-accounts.ts), every step safe to repeat:
 *
 * - `set` with the pending version: a server that replicates from nobody (the primary, a
 *   standby) takes the new passwords (`users ensure` with that version: ALTER USER where they
 *   differ); a replica changes the password it logs in to its source with, when that is the
 *   replication account (replication restarts at once with it). The Lambda sets the primary first, so a
 *   replica reconnects with a password its source already has.
 * - `test` with the pending version: the backup and admin accounts log in with it here, and a
 *   replica's IO thread runs again.
 * - `rollback`: `set` with AWSCURRENT, after a failed set or test, so the current passwords work
 *   again everywhere.
 */
export async function rotateStep(
  context: AgentContext,
  step: RotateStep,
  versionId: string | undefined,
): Promise<RotateResult> {
  if (step !== "rollback" && !versionId)
    throw new RewindError(
      ErrorNames.usage,
      `rotate --step ${step} needs --secret-version (the rotation's token)`,
    );
  const version: SecretVersion =
    step === "rollback"
      ? { VersionStage: "AWSCURRENT" }
      : { VersionId: versionId!, VersionStage: "AWSPENDING" };
  const secret = await fetchAccountsSecret(context.config, { fresh: true, version });
  const role = await asRestoreUser(
    context,
    async (_file, sql) => (await readServerRole(context.engine, sql)).role,
  );
  if (step === "test") return { step, role, tested: await testLogins(context, secret, role) };
  if (role !== "replica") {
    return { step, role, accounts: await ensureAccounts(context, { onReplica: "refuse", version }) };
  }
  const replication = accountFrom(secret, "replication");
  if (!replication)
    throw new RewindError(
      ErrorNames.configInvalid,
      `secret ${accountsSecretId(context.config)} has no replication account`,
    );
  const sourcePassword = await asRestoreUser(context, async (_file, sql) => {
    const state = await context.engine.readReplication(sql);
    if (state?.sourceUser !== replication.username) {
      log(
        "info",
        "this replica logs in to its source as another user; its password is not Rewind's to change",
        {
          sourceUser: state?.sourceUser ?? null,
        },
      );
      return "unchanged" as const;
    }
    await context.engine.changeSourcePassword(sql, replication.password);
    return "changed" as const;
  });
  return { step, role, sourcePassword };
}

/** Logs in with the version's backup and admin accounts; on a replica, waits for the IO thread. */
async function testLogins(
  context: AgentContext,
  secret: Awaited<ReturnType<typeof fetchAccountsSecret>>,
  role: string,
): Promise<string[]> {
  const tested: string[] = [];
  const deadline = Date.now() + 60_000;
  for (const account of ["backup", "admin"] as const) {
    const credentials = accountFrom(secret, account);
    if (!credentials) throw new RewindError(ErrorNames.configInvalid, `the secret has no ${account} account`);
    // On a replica the new password arrives through replication: give it a moment.
    for (;;) {
      const failure = await loginRefusal(context, credentials).catch((error: Error) => error);
      if (!failure) break;
      if (role !== "replica" || Date.now() > deadline) throw failure;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    tested.push(`${credentials.username}@${ACCOUNTS[account].host}`);
  }
  if (role === "replica") {
    await asRestoreUser(context, async (_file, sql) => {
      for (;;) {
        const state = await context.engine.readReplication(sql);
        if (state?.ioRunning && !state.lastError) return;
        if (Date.now() > deadline)
          throw new RewindError(
            ErrorNames.replication,
            `replication does not run after the password change: ${state?.lastError ?? "the IO thread is stopped"}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    });
    tested.push("replication");
  }
  return tested;
}
