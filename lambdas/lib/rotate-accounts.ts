import {
  DescribeSecretCommand,
  GetRandomPasswordCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { ACCOUNT_NAMES, ACCOUNTS, parseAccountsSecret } from "../../core/contracts/accounts.js";
import type { RotateStep } from "../../core/contracts/agent-document.js";
import { ErrorNames } from "../../core/errors.js";
import type { HostAnswer } from "./host-status.js";
import { logger } from "./observability.js";

/** The event Secrets Manager invokes a rotation function with ("Rotation by Lambda function"). */
export interface RotationEvent {
  readonly Step: "createSecret" | "setSecret" | "testSecret" | "finishSecret";
  readonly SecretId: string;
  readonly ClientRequestToken: string;
}

export class RotationFailed extends Error {
  override readonly name = ErrorNames.rotationFailed;
}

/** The parameters of Rewind-RunAgent the rotation sends (besides Command and Cluster). */
export const ROTATION_PARAMETERS = ["Step", "SecretVersion"] as const;

export interface RotationHosts {
  /** The tag hosts carry (`rewind:cluster`), for the error when none answers. */
  readonly hostTag?: string;
  /** The cluster's hosts with their role (status), as select-source asks them. */
  roles(
    cluster: string,
  ): Promise<{ instanceId: string; role?: "primary" | "replica"; readOnly?: boolean; problem?: string }[]>;
  /** `rewind-agent rotate --step … --secret-version …` on each host. */
  run(
    cluster: string,
    instanceIds: readonly string[],
    step: RotateStep,
    version: string,
  ): Promise<HostAnswer[]>;
}

/**
 * Rotates a cluster's accounts secret (`rewind/<cluster>/accounts`) with Secrets Manager's four
 * steps, each safe to repeat (Secrets Manager retries a failed rotation from its first step with
 * the same token):
 *
 * - createSecret: a new version, AWSPENDING, with a new random password for every account
 *   (explicit ones: the stack's seed is dropped), unless that version exists.
 * - setSecret: the hosts take it, the ones that replicate from nobody first (the primary's ALTER
 *   USERs reach its replicas through replication), then each replica changes the password it logs
 *   in to its source with and restarts replication at once (MySQL only its IO thread, MariaDB
 *   both threads for milliseconds; the source already has the new password, so no reconnect
 *   is refused).
 * - testSecret: every host logs in with the new passwords and every replica replicates.
 * - finishSecret: AWSCURRENT moves to the new version.
 *
 * A failure in setSecret or testSecret rolls every host back to AWSCURRENT's passwords, so the
 * current secret works everywhere, drops the pending version, then fails the step (AWSCURRENT is
 * unchanged).
 */
export async function rotateAccounts(
  secrets: SecretsManagerClient,
  hosts: RotationHosts,
  event: RotationEvent,
): Promise<void> {
  const { SecretId: secretId, ClientRequestToken: token, Step: step } = event;
  const described = await secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
  const stages = described.VersionIdsToStages?.[token];
  const cluster = /^rewind\/(.+)\/accounts$/.exec(described.Name ?? "")?.[1];
  if (!cluster)
    throw new RotationFailed(
      `secret ${described.Name} is not a Rewind accounts secret (rewind/<cluster>/accounts)`,
    );
  if (!stages) throw new RotationFailed(`secret ${described.Name} has no version ${token} to rotate to`);
  if (stages.includes("AWSCURRENT")) {
    logger.info("version already current; nothing to do", { secret: described.Name, step, token });
    return;
  }
  if (!stages.includes("AWSPENDING"))
    throw new RotationFailed(`version ${token} of ${described.Name} is not AWSPENDING; rotate again`);
  switch (step) {
    case "createSecret":
      return createSecret(secrets, secretId, token);
    case "setSecret":
    case "testSecret":
      try {
        return await onHosts(hosts, cluster, token, [step === "setSecret" ? "set" : "test"]);
      } catch (error) {
        // Every host is back on AWSCURRENT: the version is dropped, so the next rotation (the
        // schedule, or RotateSecret by hand) starts afresh instead of being refused as one still
        // in progress (API reference, RotateSecret).
        await secrets.send(
          new UpdateSecretVersionStageCommand({
            SecretId: secretId,
            VersionStage: "AWSPENDING",
            RemoveFromVersionId: token,
          }),
        );
        throw error;
      }
    case "finishSecret": {
      const current = Object.entries(described.VersionIdsToStages ?? {}).find(([, s]) =>
        s.includes("AWSCURRENT"),
      )?.[0];
      await secrets.send(
        new UpdateSecretVersionStageCommand({
          SecretId: secretId,
          VersionStage: "AWSCURRENT",
          MoveToVersionId: token,
          ...(current ? { RemoveFromVersionId: current } : {}),
        }),
      );
      // Done: the version is current, and no longer pending (agents stop trying AWSPENDING).
      await secrets.send(
        new UpdateSecretVersionStageCommand({
          SecretId: secretId,
          VersionStage: "AWSPENDING",
          RemoveFromVersionId: token,
        }),
      );
      logger.info("rotation finished", { secret: described.Name, token });
      return;
    }
  }
}

async function createSecret(secrets: SecretsManagerClient, secretId: string, token: string): Promise<void> {
  try {
    await secrets.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionId: token, VersionStage: "AWSPENDING" }),
    );
    return; // made by an earlier attempt
  } catch (error) {
    if ((error as Error).name !== "ResourceNotFoundException") throw error;
  }
  const current = await secrets.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: "AWSCURRENT" }),
  );
  const secret = parseAccountsSecret(current.SecretString ?? "", secretId);
  const next: Record<string, { username: string; password: string }> = {};
  for (const account of ACCOUNT_NAMES) {
    const { RandomPassword } = await secrets.send(
      // Letters and digits only: safe in option files, SQL and shells whatever reads them.
      new GetRandomPasswordCommand({ PasswordLength: 32, ExcludePunctuation: true }),
    );
    next[account] = {
      username: secret[account]?.username ?? ACCOUNTS[account].username,
      password: RandomPassword!,
    };
  }
  await secrets.send(
    new PutSecretValueCommand({
      SecretId: secretId,
      ClientRequestToken: token,
      SecretString: JSON.stringify(next),
      VersionStages: ["AWSPENDING"],
    }),
  );
}

/**
 * Runs a step on every host: those that replicate from nobody first, then the replicas. Any
 * failure rolls every host back to AWSCURRENT (same order) and fails with every host's problem.
 */
async function onHosts(
  hosts: RotationHosts,
  cluster: string,
  token: string,
  steps: readonly RotateStep[],
): Promise<void> {
  const roles = await hosts.roles(cluster);
  const unreachable = roles.filter((host) => host.problem);
  const sources = roles
    .filter((host) => !host.problem && host.role !== "replica")
    .map((host) => host.instanceId);
  const replicas = roles
    .filter((host) => !host.problem && host.role === "replica")
    .map((host) => host.instanceId);
  const problems: string[] = unreachable.map((host) => `${host.instanceId}: ${host.problem}`);
  if (roles.length === 0)
    problems.push(`no online host is tagged ${hosts.hostTag ?? "rewind:cluster"}=${cluster}`);
  if (problems.length === 0) {
    for (const step of steps) {
      for (const group of [sources, replicas]) {
        const answers = await hosts.run(cluster, group, step, token);
        problems.push(...answers.filter((a) => a.problem).map((a) => `${a.instanceId}: ${a.problem}`));
        if (problems.length > 0) break;
      }
    }
  }
  if (problems.length === 0) return;
  const rollback = [
    ...(await hosts.run(cluster, sources, "rollback", token)),
    ...(await hosts.run(cluster, replicas, "rollback", token)),
  ].filter((a) => a.problem);
  throw new RotationFailed(
    `rotating the accounts of cluster ${cluster} failed: ${problems.join("; ")}. ${
      rollback.length === 0
        ? "Every host is back on the current passwords (AWSCURRENT is unchanged)"
        : `Rolling back failed too on ${rollback.map((a) => `${a.instanceId} (${a.problem})`).join(", ")}: run \`rewind-agent users ensure\` on the primary`
    }`,
  );
}
