import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import type { Construct } from "constructs";
import { type DeploymentNames, deploymentNames } from "../core/contracts/deployment.js";
import { AgentDocument, InstalledAgentDocument } from "./agent-document.js";
import { BackupStateMachine } from "./backup-state-machine.js";
import { BackupStorage } from "./backup-storage.js";
import { ClusterStacks } from "./cluster-stacks.js";
import { objectLock, type RewindConfig } from "./config.js";
import { ControlPlaneFunctions } from "./control-plane-functions.js";
import { Monitoring } from "./monitoring.js";
import { RestoreDrillStateMachine } from "./restore-drill-state-machine.js";
import { RestoreStateMachine } from "./restore-state-machine.js";
import { Schedules } from "./schedules.js";

export interface RewindStackProps extends StackProps {
  readonly config: RewindConfig;
  /** Path of the bundled host agent (built before synth). */
  readonly agentBundle: string;
}

/**
 * Everything one `cdk deploy` creates (DESIGN §8): the deployment's shared resources here, and
 * each cluster's own in a nested stack of clusters (ClusterStacks), so the fleet can grow to
 * about 1,500 clusters while every template stays far under CloudFormation's limits.
 */
export class RewindStack extends Stack {
  readonly names: DeploymentNames;
  readonly storage: BackupStorage;
  readonly agentDocument: AgentDocument;
  readonly functions: ControlPlaneFunctions;
  readonly backup: BackupStateMachine;
  readonly restore: RestoreStateMachine;
  readonly drill: RestoreDrillStateMachine;
  readonly schedules: Schedules;
  readonly monitoring: Monitoring;
  readonly clusters: ClusterStacks;

  constructor(scope: Construct, id: string, props: RewindStackProps) {
    super(scope, id, props);
    const { config } = props;
    const names = deploymentNames(config.deployment);
    this.names = names;
    this.storage = new BackupStorage(this, "Storage", {
      ...config.bucket,
      objectLock: objectLock(config),
    });
    this.monitoring = new Monitoring(this, "Monitoring", { config, names });
    const agentAsset = new s3assets.Asset(this, "AgentBundle", { path: props.agentBundle });
    this.agentDocument = new AgentDocument(this, "AgentDocument", {
      agentAsset,
      name: names.runAgentDocument,
    });
    const documentName = this.agentDocument.documentName;
    // The per-minute watchdog runs the installed bundle, downloading nothing.
    const watchdogDocument = new InstalledAgentDocument(this, "InstalledAgentDocument", {
      name: names.installedAgentDocument,
    });
    this.functions = new ControlPlaneFunctions(this, "Functions", {
      config,
      names,
      bucket: this.storage.bucket,
      key: this.storage.key,
      topic: this.monitoring.topic,
      topicKey: this.monitoring.topicKey,
      documentName,
    });
    const machines = { functions: this.functions, documentName, hostTag: names.hostTag };
    this.backup = new BackupStateMachine(this, "Backup", { ...machines, name: names.stateMachine("Backup") });
    this.restore = new RestoreStateMachine(this, "Restore", {
      ...machines,
      name: names.stateMachine("Restore"),
    });
    this.drill = new RestoreDrillStateMachine(this, "RestoreDrill", {
      ...machines,
      name: names.stateMachine("RestoreDrill"),
      scratchDatadir: config.schedules.drillDatadir,
    });
    this.schedules = new Schedules(this, "Schedules", {
      config,
      names,
      backup: this.backup.stateMachine,
      drill: this.drill.stateMachine,
      retention: this.functions.retention,
      documentName: watchdogDocument.documentName,
      agentLogs: this.monitoring.agentLogs,
    });
    this.clusters = new ClusterStacks(this, "Clusters", {
      config,
      names,
      bucket: this.storage.bucket,
      key: this.storage.key,
      agentAsset,
      agentLogs: this.monitoring.agentLogs,
      topic: this.monitoring.topic,
      rotation: this.functions.rotateAccounts,
      schedules: this.schedules,
      documentName,
      dependencies: [this.agentDocument.document, watchdogDocument.document],
    });
    this.monitoring.watchStateMachine("Backup", this.backup.stateMachine);
    this.monitoring.watchStateMachine("Restore", this.restore.stateMachine);
    this.monitoring.watchStateMachine("RestoreDrill", this.drill.stateMachine);
    this.monitoring.watchRetention(this.functions.retention);
    this.monitoring.watchSchedules(
      names.scheduleGroup,
      this.schedules.deadLetters.metricApproximateNumberOfMessagesVisible(),
    );

    // What a platform engineer copies into each host's /etc/rewind/agent.json and instance role
    // (each cluster's hosts attach the managed policy named `<deployment>-host-<cluster>`).
    new CfnOutput(this, "BucketName", {
      value: this.storage.bucket.bucketName,
      description: "agent config: bucket",
    });
    new CfnOutput(this, "KeyArn", {
      value: this.storage.key.keyArn,
      description: "agent config: encryption.kmsKeyId",
    });
    new CfnOutput(this, "Deployment", {
      value: names.deployment,
      description: `agent config: deployment; hosts are tagged ${names.hostTag}=<cluster> and their instance role attaches the policy ${names.hostPolicy("<cluster>")}`,
    });
    new CfnOutput(this, "RestoreStateMachineArn", {
      value: this.restore.stateMachine.stateMachineArn,
      description: "start a restore here (Step Functions console)",
    });
  }
}
