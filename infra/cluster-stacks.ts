import { createHash } from "node:crypto";
import { CfnOutput, CfnParameter, type CfnResource, NestedStack } from "aws-cdk-lib";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import type * as s3assets from "aws-cdk-lib/aws-s3-assets";
import type * as sns from "aws-cdk-lib/aws-sns";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";
import { type DeploymentNames, HOST_POLICY_METADATA } from "../core/contracts/deployment.js";
import type { ClusterSettings } from "../core/contracts/lambda-settings.js";
import { ClusterAlarms } from "./cluster-alarms.js";
import { ClusterSecrets } from "./cluster-secrets.js";
import type { RewindConfig } from "./config.js";
import { DatabaseHostPolicy } from "./database-host-policy.js";
import { clusterSchedules, type Schedules } from "./schedules.js";

type ClusterConfig = RewindConfig["clusters"][number];

/**
 * How many nested stacks the clusters are spread over. A cluster's stack is a hash of its name, so
 * adding or removing a cluster changes its own nested stack only (and the parent's reference to
 * it), never the others; the number must therefore never change once deployed (a change would
 * move clusters between stacks, recreating their resources).
 */
export const CLUSTER_STACKS = 128;

/**
 * At most this many clusters in one nested stack: each holds 15 resources (CloudFormation allows
 * 500 a stack). With 128 stacks this holds about 1,500 clusters before any one stack fills (at
 * 1,000 the fullest holds about 18).
 */
export const MAX_CLUSTERS_PER_STACK = 30;

/** The nested stack a cluster lives in: a stable hash of its name, 0 … CLUSTER_STACKS - 1. */
export function clusterStackIndex(cluster: string): number {
  return createHash("sha256").update(cluster).digest().readUInt32BE(0) % CLUSTER_STACKS;
}

export function clusterStackId(index: number): string {
  return `Clusters${String(index).padStart(3, "0")}`;
}

/** What each cluster's resources are made from: the deployment's shared resources. */
export interface ClusterResourcesShared {
  readonly config: RewindConfig;
  readonly names: DeploymentNames;
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  readonly agentAsset: s3assets.Asset;
  readonly agentLogs: logs.ILogGroup;
  readonly topic: sns.ITopic;
  readonly rotation: lambda.IFunction;
  readonly schedules: Schedules;
  /** Rewind-RunAgent, which the install association runs. */
  readonly documentName: string;
  /** Resources the association and schedules need created first (the documents). */
  readonly dependencies: readonly Construct[];
}

/**
 * Everything one cluster has of its own (DESIGN §8): its settings parameter, its accounts secret
 * and rotation, its hosts' policy, the install association, its four schedules and its alarms.
 */
export class ClusterResources extends Construct {
  readonly hostPolicy: DatabaseHostPolicy;

  constructor(scope: Construct, cluster: ClusterConfig, shared: ClusterResourcesShared) {
    super(scope, cluster.name);
    const { names, config } = shared;
    const settings: ClusterSettings = {
      name: cluster.name,
      engine: cluster.engine,
      sourcePolicy: cluster.sourcePolicy,
      maxReplicaLagSeconds: cluster.maxReplicaLagSeconds,
    };
    // The cluster's settings, as data the Lambdas read for the cluster their input names.
    new ssm.StringParameter(this, "Settings", {
      parameterName: `${names.clusterParameters}${cluster.name}`,
      stringValue: JSON.stringify(settings),
      description: `Rewind settings of cluster ${cluster.name}`,
    });
    new ClusterSecrets(this, "Secrets", {
      cluster: cluster.name,
      names,
      key: shared.key,
      rotation: { fn: shared.rotation, days: config.schedules.rotationDays },
    });
    this.hostPolicy = new DatabaseHostPolicy(this, "HostPolicy", {
      cluster: cluster.name,
      names,
      bucket: shared.bucket,
      key: shared.key,
      agentAsset: shared.agentAsset,
      agentLogs: shared.agentLogs,
    });
    // Which cluster's hosts attach it, for tools that read the template (the sandbox's IAM).
    (this.hostPolicy.policy.node.defaultChild as CfnResource).addMetadata(HOST_POLICY_METADATA, cluster.name);
    // binlog-stream runs as a service on every host of the cluster: installed (or updated) when
    // a host is tagged, and checked every 30 minutes, State Manager's shortest rate (an
    // unchanged install leaves the running service alone).
    const install = new ssm.CfnAssociation(this, "InstallStreamer", {
      associationName: names.installAssociation(cluster.name),
      name: shared.documentName,
      // A deploy with a new agent makes a new document version: the association runs it.
      documentVersion: "$LATEST",
      targets: [{ key: `tag:${names.hostTag}`, values: [cluster.name] }],
      parameters: { Command: ["install"] },
      scheduleExpression: "rate(30 minutes)",
      maxConcurrency: "100%",
      maxErrors: "100%",
    });
    for (const dependency of shared.dependencies) install.node.addDependency(dependency);
    clusterSchedules(this, shared.schedules, cluster.name);
    new ClusterAlarms(this, "Alarms", { cluster: cluster.name, config, names, topic: shared.topic });
    new CfnOutput(this, "HostPolicyArn", {
      key: `HostPolicyArn${cluster.name.replace(/-/g, "")}`,
      value: this.hostPolicy.policy.managedPolicyArn,
      description: `attach to the instance role of the ${cluster.name} database hosts (tag them ${names.hostTag}=${cluster.name})`,
    });
  }
}

/** One nested stack of clusters: those whose name hashes to it. */
export class ClusterStack extends NestedStack {
  readonly clusters: ClusterResources[];

  constructor(
    scope: Construct,
    index: number,
    clusters: readonly ClusterConfig[],
    shared: ClusterResourcesShared,
  ) {
    super(scope, clusterStackId(index), {
      description:
        `Rewind ${shared.names.deployment}: clusters ${clusters.map((c) => c.name).join(", ")}`.slice(
          0,
          1000,
        ),
    });
    // The bucket as a parameter of a name this code chooses (CDK's own reference parameters have
    // generated names), so cdk-nag's finding on each host policy's `<BucketArn>/<cluster>/*` can
    // be acknowledged by name.
    const bucketArn = new CfnParameter(this, "BucketArn", { type: "String" });
    this.setParameter(bucketArn.logicalId, shared.bucket.bucketArn);
    const bucket = s3.Bucket.fromBucketArn(this, "Bucket", bucketArn.valueAsString);
    this.clusters = clusters.map((cluster) => new ClusterResources(this, cluster, { ...shared, bucket }));
  }
}

/**
 * The fleet's per-cluster resources, spread over nested stacks by a hash of each cluster's name
 * (CloudFormation's own scaling: each stack far under its 500 resources and 1 MB, the parent
 * holding one resource per nested stack). Empty stacks are not made.
 */
export class ClusterStacks extends Construct {
  readonly stacks: ClusterStack[] = [];
  readonly byCluster = new Map<string, ClusterResources>();

  constructor(scope: Construct, id: string, shared: ClusterResourcesShared) {
    super(scope, id);
    const groups = new Map<number, ClusterConfig[]>();
    for (const cluster of shared.config.clusters) {
      const index = clusterStackIndex(cluster.name);
      groups.set(index, [...(groups.get(index) ?? []), cluster]);
    }
    for (const [index, clusters] of [...groups].sort(([a], [b]) => a - b)) {
      if (clusters.length > MAX_CLUSTERS_PER_STACK) {
        throw new Error(
          `${clusters.length} clusters fall in nested stack ${clusterStackId(index)} (${clusters.map((c) => c.name).join(", ")}), more than the ${MAX_CLUSTERS_PER_STACK} that fit under CloudFormation's 500 resources a stack: this deployment holds about 1,500 clusters. Put the rest in a second deployment (config "deployment")`,
        );
      }
      const stack = new ClusterStack(this, index, clusters, shared);
      this.stacks.push(stack);
      for (const made of stack.clusters) this.byCluster.set(made.node.id, made);
    }
  }
}
