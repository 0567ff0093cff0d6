import { Aws, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import type * as s3assets from "aws-cdk-lib/aws-s3-assets";
import { Construct } from "constructs";
import type { DeploymentNames } from "../core/contracts/deployment.js";
import { acknowledge, arnWildcard } from "./nag.js";

export interface DatabaseHostPolicyProps {
  readonly cluster: string;
  readonly names: DeploymentNames;
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  readonly agentAsset: s3assets.Asset;
  /** Where SSM writes the agent's output for scheduled runs. */
  readonly agentLogs: logs.ILogGroup;
}

/**
 * What a cluster's database hosts may do, attached to their instance role: read the agent,
 * read and write their own cluster's prefix, use the key, read their cluster's secrets, and
 * report to Step Functions.
 */
export class DatabaseHostPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: DatabaseHostPolicyProps) {
    super(scope, id);
    const prefix = `${props.cluster}/*`;
    const secrets = `${props.names.secretsPrefix}${props.cluster}/*`;
    const clusterSecrets = `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${secrets}`;
    this.policy = new iam.ManagedPolicy(this, "Policy", {
      // Named, so a platform engineer attaches it by a name they can predict (no output per cluster).
      managedPolicyName: props.names.hostPolicy(props.cluster),
      description: `Rewind agent on the ${props.cluster} database hosts`,
      statements: [
        new iam.PolicyStatement({
          sid: "ReadAgent",
          actions: ["s3:GetObject"],
          resources: [props.agentAsset.bucket.arnForObjects(props.agentAsset.s3ObjectKey)],
        }),
        new iam.PolicyStatement({
          sid: "ClusterObjects",
          // No s3:DeleteObject: a compromised host cannot destroy its cluster's backups. What an
          // interrupted backup leaves is removed by retention (the control plane).
          actions: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObjectAttributes"],
          resources: [props.bucket.arnForObjects(prefix)],
        }),
        new iam.PolicyStatement({
          sid: "ListClusterPrefix",
          actions: ["s3:ListBucket"],
          resources: [props.bucket.bucketArn],
          conditions: { StringLike: { "s3:prefix": [`${props.cluster}/`, prefix] } },
        }),
        // The Encryption SDK asks KMS for data keys with the encryption context {cluster, …}: a
        // host can neither make nor open another cluster's data keys.
        new iam.PolicyStatement({
          sid: "DataKeys",
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
          resources: [props.key.keyArn],
          conditions: { StringEquals: { "kms:EncryptionContext:cluster": props.cluster } },
        }),
        // SSE-KMS: S3 uses the key on the host's behalf, and only through S3.
        new iam.PolicyStatement({
          sid: "BucketEncryption",
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
          resources: [props.key.keyArn],
          conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
        }),
        new iam.PolicyStatement({
          sid: "ClusterSecrets",
          actions: ["secretsmanager:GetSecretValue"],
          resources: [clusterSecrets],
        }),
        // The secrets are encrypted under the stack's key: Secrets Manager decrypts them with the
        // caller's permission, so reading one needs kms:Decrypt through Secrets Manager too,
        // for this cluster's secrets only (their ARN is the encryption context).
        new iam.PolicyStatement({
          sid: "ClusterSecretsKey",
          actions: ["kms:Decrypt"],
          resources: [props.key.keyArn],
          conditions: {
            StringEquals: { "kms:ViaService": `secretsmanager.${Aws.REGION}.amazonaws.com` },
            StringLike: { "kms:EncryptionContext:SecretARN": clusterSecrets },
          },
        }),
        // What the SSM Agent calls to stream Run Command output to CloudWatch Logs: it looks the
        // group up (DescribeLogGroups by name prefix), creates it when absent, then its stream.
        new iam.PolicyStatement({
          sid: "AgentOutput",
          actions: [
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
          ],
          resources: [props.agentLogs.logGroupArn],
        }),
        new iam.PolicyStatement({
          sid: "FindAgentOutputGroup",
          actions: ["logs:DescribeLogGroups"],
          resources: [`arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*`],
        }),
        // SendTask* support no resource-level permissions: the task token is the authorisation.
        new iam.PolicyStatement({
          sid: "ReportToStepFunctions",
          actions: ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
          resources: ["*"],
        }),
      ],
    });
    const resource = this.policy.node.defaultChild!;
    const bucketArnRef = (Stack.of(this).resolve(props.bucket.bucketArn) as { Ref?: string }).Ref;
    acknowledge(
      resource,
      // In a clusters' nested stack the bucket's ARN is its parameter (`<BucketArn>/orders/*`).
      bucketArnRef
        ? `AwsSolutions-IAM5[Resource::<${bucketArnRef}>/${props.cluster}/*]`
        : arnWildcard(props.bucket, `/${props.cluster}/*`),
      "The agent writes backups and binlogs under its own cluster's prefix with names it makes up (backup ids, binlog files); nothing outside that prefix",
    );
    acknowledge(
      resource,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${secrets}]`,
      "Secret ARNs end in a random suffix; the cluster's own <deployment>/<cluster>/ secrets only",
    );
    acknowledge(
      resource,
      "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
      "The SSM Agent finds the output log group with DescribeLogGroups, which lists groups by name prefix and cannot be limited to one group; it reveals names only",
    );
    acknowledge(
      resource,
      "AwsSolutions-IAM5[Resource::*]",
      "states:SendTaskSuccess/Failure/Heartbeat have no resource-level permissions; the task token is the authorisation",
    );
  }
}
