import path from "node:path";
import { fileURLToPath } from "node:url";
import { Aws, Duration } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import type { DeploymentNames } from "../core/contracts/deployment.js";
import { settingsToEnv } from "../core/contracts/lambda-settings.js";
import { objectLock, type RewindConfig } from "./config.js";
import {
  acknowledge,
  arnWildcard,
  defaultPolicyOf,
  INSTANCE_WILDCARD,
  INSTANCE_WILDCARD_REASON,
} from "./nag.js";

const LAMBDAS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../lambdas");

export interface ControlPlaneFunctionsProps {
  readonly config: RewindConfig;
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  readonly topic: sns.ITopic;
  /** The topic's key: publishing to an encrypted topic needs it. */
  readonly topicKey: kms.IKey;
  /** Name of the Rewind-RunAgent document, for select-source's `status` calls. */
  readonly documentName: string;
  readonly names: DeploymentNames;
}

/**
 * The six Lambdas of the control plane (DESIGN §2), each a thin handler in `lambdas/<name>/`,
 * bundled by the local esbuild (no Docker) for Node 22 on ARM64, with only the access it needs.
 */
export class ControlPlaneFunctions extends Construct {
  readonly selectSource: nodejs.NodejsFunction;
  readonly verify: nodejs.NodejsFunction;
  readonly planRestore: nodejs.NodejsFunction;
  readonly retention: nodejs.NodejsFunction;
  readonly notify: nodejs.NodejsFunction;
  readonly rotateAccounts: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: ControlPlaneFunctionsProps) {
    super(scope, id);
    const { config, names } = props;
    const lock = objectLock(config);
    const environment = {
      ...settingsToEnv({
        bucket: props.bucket.bucketName,
        clusterParameters: names.clusterParameters,
        retention: {
          fullBackups: config.retention.fullBackups,
          pitrDays: config.retention.pitrDays,
          ...(lock ? { objectLockDays: lock.days } : {}),
        },
        documentName: props.documentName,
        topicArn: props.topic.topicArn,
        hostTag: names.hostTag,
      }),
      POWERTOOLS_SERVICE_NAME: "rewind",
      POWERTOOLS_METRICS_NAMESPACE: names.metricsNamespace,
    };
    const make = (name: string, description: string, timeout: Duration) => {
      const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention: logs.RetentionDays.THREE_MONTHS });
      // Its own role: no AWSLambdaBasicExecutionRole (which may write to any log group).
      const role = new iam.Role(this, `${name}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `Rewind ${name} Lambda`,
      });
      logGroup.grantWrite(role);
      return new nodejs.NodejsFunction(this, name, {
        entry: path.join(LAMBDAS, name.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase(), "handler.ts"),
        handler: "handler",
        description,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 512,
        timeout,
        role,
        environment,
        logGroup,
        loggingFormat: lambda.LoggingFormat.JSON,
        bundling: {
          forceDockerBundling: false,
          logLevel: nodejs.LogLevel.ERROR,
          format: nodejs.OutputFormat.ESM,
          target: "node22",
          minify: true,
          sourceMap: true,
          // ESM bundles of CommonJS dependencies need a require().
          banner:
            "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        },
      });
    };
    this.selectSource = make(
      "SelectSource",
      "Rewind: asks each host's agent for its status and picks the backup source",
      Duration.minutes(2),
    );
    this.verify = make(
      "Verify",
      "Rewind: checks a backup's objects against its manifest in S3",
      Duration.minutes(5),
    );
    this.planRestore = make(
      "PlanRestore",
      "Rewind: plans a restore from the backups and binlogs in S3",
      Duration.minutes(2),
    );
    this.retention = make(
      "Retention",
      "Rewind: PITR-aware expiry of backups and binlogs",
      Duration.minutes(10),
    );
    this.notify = make(
      "Notify",
      "Rewind: records the outcome of a run (metric) and tells the operators",
      Duration.seconds(30),
    );

    // Each rotation step waits for the agents over SSM (a test step waits up to a minute for a
    // replica to reconnect); Secrets Manager invokes it once per step.
    this.rotateAccounts = make(
      "RotateAccounts",
      "Rewind: rotates a cluster's accounts secret, changing the passwords on its hosts through the agent",
      Duration.minutes(10),
    );

    const allow = (
      fn: lambda.Function,
      sid: string,
      actions: string[],
      resources: string[],
      conditions?: Record<string, unknown>,
    ) => fn.addToRolePolicy(new iam.PolicyStatement({ sid, actions, resources, conditions }));
    const objects = props.bucket.arnForObjects("*");
    // The Lambdas use the key only through S3 (SSE-KMS), never directly: they can read the
    // bucket's objects but cannot unwrap a data key the agents' Encryption SDK wrapped (a direct
    // kms:Decrypt, whose kms:ViaService is absent), so no Lambda can decrypt backup data.
    const throughS3 = { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } };
    for (const fn of [this.verify, this.planRestore, this.retention]) {
      allow(fn, "ListCatalog", ["s3:ListBucket"], [props.bucket.bucketArn]);
      allow(fn, "ReadManifests", ["s3:GetObject", "s3:GetObjectAttributes"], [objects]);
      // Objects are SSE-KMS: reading needs the key.
      allow(fn, "DecryptObjects", ["kms:Decrypt"], [props.key.keyArn], throughS3);
    }
    // Each cluster's settings are data: one SSM parameter per cluster (in the cluster's nested
    // stack), read by the Lambdas that take a cluster in their input, so neither the environment
    // nor these policies grow with the fleet.
    const parameters = `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:parameter${names.clusterParameters}*`;
    for (const fn of [this.selectSource, this.planRestore, this.retention])
      allow(fn, "ReadClusterSettings", ["ssm:GetParameter"], [parameters]);
    allow(this.planRestore, "WritePlans", ["s3:PutObject"], [props.bucket.arnForObjects("*/restores/*")]);
    allow(this.planRestore, "EncryptPlans", ["kms:GenerateDataKey"], [props.key.keyArn], throughS3);
    // Retention deletes versions by id (a plain DELETE on this versioned bucket would only write a
    // delete marker and keep the bytes), so it lists versions and deletes versions, nothing else.
    allow(this.retention, "ListVersions", ["s3:ListBucketVersions"], [props.bucket.bucketArn]);
    allow(this.retention, "ExpireObjectVersions", ["s3:DeleteObjectVersion"], [objects]);
    allow(this.notify, "TellOperators", ["sns:Publish"], [props.topic.topicArn]);
    allow(this.notify, "EncryptMessages", ["kms:Decrypt", "kms:GenerateDataKey"], [props.topicKey.keyArn]);
    // DescribeInstanceInformation and GetCommandInvocation have no resource-level permissions.
    for (const fn of [this.selectSource, this.rotateAccounts]) {
      allow(fn, "FindClusterHosts", ["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation"], ["*"]);
      allow(
        fn,
        "AskAgentStatus",
        ["ssm:SendCommand"],
        [`arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:document/${props.documentName}`],
      );
      allow(
        fn,
        "AskTaggedHosts",
        ["ssm:SendCommand"],
        [`arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:instance/*`],
        // Any host of this deployment: the same size for any fleet.
        { StringLike: { [`ssm:resourceTag/${names.hostTag}`]: "*" } },
      );
    }
    // The rotation function: the deployment's accounts secrets only (`<deployment>/<cluster>/accounts`,
    // whose ARNs end in a random suffix), and their key through Secrets Manager.
    const accountSecrets = [
      `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${names.secretsPrefix}*/accounts-*`,
    ];
    allow(
      this.rotateAccounts,
      "RotateAccountSecrets",
      [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
      ],
      accountSecrets,
    );
    // Secrets Manager invokes it for every cluster's rotation (the schedules are in the clusters'
    // nested stacks; one permission for all, from this account only).
    this.rotateAccounts.addPermission("SecretsManagerRotates", {
      principal: new iam.ServicePrincipal("secretsmanager.amazonaws.com"),
      sourceAccount: Aws.ACCOUNT_ID,
    });
    allow(this.rotateAccounts, "RandomPasswords", ["secretsmanager:GetRandomPassword"], ["*"]);
    allow(this.rotateAccounts, "SecretsKey", ["kms:Decrypt", "kms:GenerateDataKey"], [props.key.keyArn], {
      StringEquals: { "kms:ViaService": `secretsmanager.${Aws.REGION}.amazonaws.com` },
    });

    acknowledge(
      defaultPolicyOf(this.selectSource.role!),
      "AwsSolutions-IAM5[Resource::*]",
      "ssm:DescribeInstanceInformation and ssm:GetCommandInvocation have no resource-level permissions",
    );
    acknowledge(defaultPolicyOf(this.selectSource.role!), INSTANCE_WILDCARD, INSTANCE_WILDCARD_REASON);
    acknowledge(
      defaultPolicyOf(this.rotateAccounts.role!),
      "AwsSolutions-IAM5[Resource::*]",
      "ssm:DescribeInstanceInformation, ssm:GetCommandInvocation and secretsmanager:GetRandomPassword have no resource-level permissions",
    );
    acknowledge(defaultPolicyOf(this.rotateAccounts.role!), INSTANCE_WILDCARD, INSTANCE_WILDCARD_REASON);
    acknowledge(
      defaultPolicyOf(this.rotateAccounts.role!),
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${names.secretsPrefix}*/accounts-*]`,
      "The accounts secret of any cluster of this deployment (<deployment>/<cluster>/accounts; an ARN ends in a random suffix): one pattern, so the policy does not grow with the fleet",
    );
    for (const fn of [this.verify, this.planRestore, this.retention]) {
      acknowledge(
        defaultPolicyOf(fn.role!),
        arnWildcard(props.bucket, "/*"),
        "Reads the manifests of any configured cluster (every cluster's prefix), never writes outside restores/",
      );
    }
    for (const fn of [this.selectSource, this.planRestore, this.retention]) {
      acknowledge(
        defaultPolicyOf(fn.role!),
        `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter${names.clusterParameters}*]`,
        "Reads the settings of the cluster its input names: the deployment's cluster parameters, one per cluster, read only",
      );
    }
    acknowledge(
      defaultPolicyOf(this.planRestore.role!),
      arnWildcard(props.bucket, "/*/restores/*"),
      "Writes restore plans under <cluster>/restores/<restore id>/, named by the execution",
    );
    for (const fn of this.all) {
      acknowledge(
        fn.node.defaultChild!,
        "AwsSolutions-L1",
        "Node 22 is the runtime Rewind targets and tests (DESIGN §6); move with the agent and the tools",
      );
    }
  }

  get all(): nodejs.NodejsFunction[] {
    return [
      this.selectSource,
      this.verify,
      this.planRestore,
      this.retention,
      this.notify,
      this.rotateAccounts,
    ];
  }
}
