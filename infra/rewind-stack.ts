import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import * as ssm from "aws-cdk-lib/aws-ssm";
import type { Construct } from "constructs";
import { AgentDocument, InstalledAgentDocument } from "./agent-document.js";
import { BackupStateMachine } from "./backup-state-machine.js";
import { BackupStorage } from "./backup-storage.js";
import { ClusterSecrets } from "./cluster-secrets.js";
import { objectLock, type RewindConfig } from "./config.js";
import { ControlPlaneFunctions } from "./control-plane-functions.js";
import { DatabaseHostPolicy } from "./database-host-policy.js";
import { Monitoring } from "./monitoring.js";
import { RestoreDrillStateMachine } from "./restore-drill-state-machine.js";
import { RestoreStateMachine } from "./restore-state-machine.js";
import { SCHEDULE_GROUP, Schedules } from "./schedules.js";

export interface RewindStackProps extends StackProps {
  readonly config: RewindConfig;
  /** Path of the bundled host agent (built before synth). */
  readonly agentBundle: string;
}

/** Everything one `cdk deploy` creates (DESIGN §6). */
export class RewindStack extends Stack {
  readonly storage: BackupStorage;
  readonly agentDocument: AgentDocument;
  /** One per cluster, for the instance role of that cluster's database hosts. */
  readonly hostPolicies: DatabaseHostPolicy[];
  readonly functions: ControlPlaneFunctions;
  readonly backup: BackupStateMachine;
  readonly restore: RestoreStateMachine;
  readonly drill: RestoreDrillStateMachine;
  readonly schedules: Schedules;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: RewindStackProps) {
    super(scope, id, props);
    const { config } = props;
    const clusters = config.clusters.map((cluster) => cluster.name);
    this.storage = new BackupStorage(this, "Storage", {
      ...config.bucket,
      objectLock: objectLock(config),
    });
    this.monitoring = new Monitoring(this, "Monitoring", { config });
    const agentAsset = new s3assets.Asset(this, "AgentBundle", { path: props.agentBundle });
    this.agentDocument = new AgentDocument(this, "AgentDocument", { agentAsset });
    const documentName = this.agentDocument.documentName;
    // The per-minute watchdog runs the installed bundle, downloading nothing.
    const watchdogDocument = new InstalledAgentDocument(this, "InstalledAgentDocument");
    this.hostPolicies = clusters.map((cluster) => {
      return new DatabaseHostPolicy(this, `HostPolicy-${cluster}`, {
        cluster,
        bucket: this.storage.bucket,
        key: this.storage.key,
        agentAsset,
        agentLogs: this.monitoring.agentLogs,
      });
    });
    this.functions = new ControlPlaneFunctions(this, "Functions", {
      config,
      bucket: this.storage.bucket,
      key: this.storage.key,
      topic: this.monitoring.topic,
      topicKey: this.monitoring.topicKey,
      documentName,
    });
    for (const cluster of clusters) {
      new ClusterSecrets(this, `Secrets-${cluster}`, {
        cluster,
        key: this.storage.key,
        rotation: { fn: this.functions.rotateAccounts, days: config.schedules.rotationDays },
      });
    }
    const machines = { functions: this.functions, documentName, clusters };
    this.backup = new BackupStateMachine(this, "Backup", machines);
    this.restore = new RestoreStateMachine(this, "Restore", machines);
    this.drill = new RestoreDrillStateMachine(this, "RestoreDrill", {
      ...machines,
      scratchDatadir: config.schedules.drillDatadir,
    });
    this.schedules = new Schedules(this, "Schedules", {
      config,
      backup: this.backup.stateMachine,
      drill: this.drill.stateMachine,
      retention: this.functions.retention,
      documentName: watchdogDocument.documentName,
      agentLogs: this.monitoring.agentLogs,
    });
    this.schedules.node.addDependency(watchdogDocument.document);
    for (const cluster of clusters) {
      this.monitoring.watchCluster(cluster);
      // binlog-stream runs as a service on every host of the cluster: installed (or updated) when
      // a host is tagged, and checked every 30 minutes, State Manager's shortest rate (an
      // unchanged install leaves the running service alone).
      const install = new ssm.CfnAssociation(this, `InstallStreamer-${cluster}`, {
        associationName: `rewind-install-${cluster}`,
        name: documentName,
        // A deploy with a new agent makes a new document version: the association runs it.
        documentVersion: "$LATEST",
        targets: [{ key: "tag:rewind:cluster", values: [cluster] }],
        parameters: { Command: ["install"] },
        scheduleExpression: "rate(30 minutes)",
        maxConcurrency: "100%",
        maxErrors: "100%",
      });
      install.node.addDependency(this.agentDocument.document);
    }
    this.monitoring.watchStateMachine("Backup", this.backup.stateMachine);
    this.monitoring.watchStateMachine("Restore", this.restore.stateMachine);
    this.monitoring.watchStateMachine("RestoreDrill", this.drill.stateMachine);
    this.monitoring.watchRetention(this.functions.retention);
    this.monitoring.watchSchedules(
      SCHEDULE_GROUP,
      this.schedules.deadLetters.metricApproximateNumberOfMessagesVisible(),
    );

    // What a platform engineer copies into each host's /etc/rewind/agent.json and instance role.
    new CfnOutput(this, "BucketName", {
      value: this.storage.bucket.bucketName,
      description: "agent config: bucket",
    });
    new CfnOutput(this, "KeyArn", {
      value: this.storage.key.keyArn,
      description: "agent config: encryption.kmsKeyId",
    });
    this.hostPolicies.forEach((policy, i) => {
      new CfnOutput(this, `HostPolicyArn-${clusters[i]}`, {
        value: policy.policy.managedPolicyArn,
        description: `attach to the instance role of the ${clusters[i]} database hosts (tag them rewind:cluster=${clusters[i]})`,
      });
    });
    new CfnOutput(this, "RestoreStateMachineArn", {
      value: this.restore.stateMachine.stateMachineArn,
      description: "start a restore here (Step Functions console)",
    });
  }
}
