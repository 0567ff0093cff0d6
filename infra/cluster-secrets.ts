import { RemovalPolicy } from "aws-cdk-lib";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { ACCOUNTS_SEED, initialAccountsTemplate } from "../core/contracts/accounts.js";
import type { DeploymentNames } from "../core/contracts/deployment.js";

export interface ClusterSecretsProps {
  readonly cluster: string;
  readonly names: DeploymentNames;
  /** The key the hosts already use for backups; they decrypt their secrets with it. */
  readonly key: kms.IKey;
  /** The rotation function (lambdas/rotate-accounts) and how often it runs. */
  readonly rotation: { readonly fn: lambda.IFunction; readonly days: number };
}

/**
 * The cluster's one secret, `<deployment>/<cluster>/accounts` (`rewind/…` by default): every database account Rewind uses
 * (backup, replication, admin; core/contracts/accounts.ts), as usernames and a generated seed the
 * passwords are derived from until they are set explicitly. `users ensure` makes the servers
 * match it, and Secrets Manager rotates it on a schedule through the rotation function
 * (lambdas/rotate-accounts), which changes the passwords on the hosts through the agent.
 * Retained on stack deletion: the servers keep using these passwords.
 *
 * Stacks created before it had one secret per user (`rewind/<cluster>/root|repl|backup`, and
 * `dba`): they were retained too, so an update leaves them in the account, and hosts whose config
 * still names them keep working until `users ensure` has moved the servers onto this one
 * (README, "Upgrading").
 */
export class ClusterSecrets extends Construct {
  readonly accounts: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: ClusterSecretsProps) {
    super(scope, id);
    this.accounts = new secretsmanager.Secret(this, "accounts", {
      secretName: props.names.accountsSecret(props.cluster),
      description: `The MariaDB/MySQL accounts Rewind uses on cluster ${props.cluster}: backup, replication, admin`,
      encryptionKey: props.key,
      removalPolicy: RemovalPolicy.RETAIN,
      generateSecretString: {
        secretStringTemplate: JSON.stringify(initialAccountsTemplate()),
        generateStringKey: ACCOUNTS_SEED.key,
        passwordLength: ACCOUNTS_SEED.length,
        excludePunctuation: true,
      },
    });
    // The schedule alone (L1): `addRotationSchedule` would also add this secret's ARN to the
    // rotation function's role and a grant on the key, so the shared role would grow with the
    // fleet (and, from a nested stack, depend on every cluster's stack). The function's policy
    // names the deployment's secrets by pattern, and Secrets Manager's permission to invoke it is
    // granted once (ControlPlaneFunctions).
    new secretsmanager.CfnRotationSchedule(this, "Rotation", {
      secretId: this.accounts.secretArn,
      rotationLambdaArn: props.rotation.fn.functionArn,
      rotationRules: { scheduleExpression: `rate(${props.rotation.days} days)` },
      // Not at deploy: a new cluster's hosts are not onboarded yet, and a rotation needs them.
      rotateImmediatelyOnUpdate: false,
    });
    // As addRotationSchedule did: the account's root may not delete the secret.
    this.accounts.denyAccountRootDelete();
  }
}
