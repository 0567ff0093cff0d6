import { Aws } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import type { DeploymentNames } from "../core/contracts/deployment.js";
import type { RewindConfig } from "./config.js";
import { acknowledge, defaultPolicyOf, INSTANCE_WILDCARD, INSTANCE_WILDCARD_REASON } from "./nag.js";

export interface SchedulesProps {
  readonly config: RewindConfig;
  readonly backup: sfn.IStateMachine;
  readonly drill: sfn.IStateMachine;
  /** The retention Lambda, invoked per cluster on its own schedule. */
  readonly retention: lambda.IFunction;
  /** The document the binlog watchdog runs (Rewind-RunInstalledAgent: no download per run). */
  readonly documentName: string;
  /** Where SSM writes binlog-push output (the lag metric is read from it). */
  readonly agentLogs: logs.ILogGroup;
  readonly names: DeploymentNames;
}

/**
 * EventBridge Scheduler (DESIGN §5, §7): full backups and drills start the state machines, retention
 * invokes its Lambda per cluster (off the backup's success path); binlog
 * shipping sends the SSM command straight to the cluster's tagged hosts every N minutes, with no
 * Step Functions execution per run. Failed invocations are retried, then kept in a dead-letter
 * queue.
 */
export class Schedules extends Construct {
  readonly deadLetters: sqs.Queue;
  readonly group: scheduler.CfnScheduleGroup;
  readonly role: iam.Role;
  /** What the clusters' schedules are made from (clusterSchedules). */
  readonly settings: SchedulesProps;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    this.settings = props;
    const { names } = props;
    this.group = new scheduler.CfnScheduleGroup(this, "Group", { name: names.scheduleGroup });
    this.deadLetters = new sqs.Queue(this, "DeadLetters", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("scheduler.amazonaws.com", {
        conditions: { StringEquals: { "aws:SourceAccount": Aws.ACCOUNT_ID } },
      }),
      description: "Rewind schedules: start backups and drills, send the binlog watchdog to tagged hosts",
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "StartRuns",
        actions: ["states:StartExecution"],
        resources: [props.backup.stateMachineArn, props.drill.stateMachineArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "ShipBinlogsDocument",
        actions: ["ssm:SendCommand"],
        resources: [
          `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:document/${props.documentName}`,
        ],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "ShipBinlogsHosts",
        actions: ["ssm:SendCommand"],
        resources: [`arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:instance/*`],
        // Any host of this deployment (the tag's value is the cluster): the same size for any fleet.
        conditions: { StringLike: { [`ssm:resourceTag/${names.hostTag}`]: "*" } },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "ApplyRetention",
        actions: ["lambda:InvokeFunction"],
        resources: [props.retention.functionArn],
      }),
    );
    this.deadLetters.grantSendMessages(role);
    acknowledge(defaultPolicyOf(role), INSTANCE_WILDCARD, INSTANCE_WILDCARD_REASON);
    acknowledge(
      this.deadLetters.node.defaultChild!,
      "AwsSolutions-SQS3",
      "This queue is the dead-letter queue of the schedules (cdk-nag does not see Scheduler's DeadLetterConfig)",
    );
    this.role = role;
  }
}

/**
 * One cluster's schedules, in the scope given (the cluster's nested stack), through the shared
 * group, role and dead-letter queue: its full backup, drill and retention within the flexible
 * window, and the binlog watchdog every N minutes on the minute.
 */
export function clusterSchedules(
  scope: Construct,
  shared: Schedules,
  cluster: string,
): scheduler.CfnSchedule[] {
  const { config, names } = shared.settings;
  const made: scheduler.CfnSchedule[] = [];
  const target = (arn: string, input: unknown): scheduler.CfnSchedule.TargetProperty => ({
    arn,
    roleArn: shared.role.roleArn,
    input: JSON.stringify(input),
    deadLetterConfig: { arn: shared.deadLetters.queueArn },
    retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
  });
  // Scheduler invokes a FLEXIBLE schedule at a random time within the window after the
  // scheduled one (Scheduler User Guide, "Configuring flexible time windows").
  const spread: scheduler.CfnSchedule.FlexibleTimeWindowProperty =
    config.schedules.spreadMinutes > 0
      ? { mode: "FLEXIBLE", maximumWindowInMinutes: config.schedules.spreadMinutes }
      : { mode: "OFF" };
  const schedule = (
    kind: "full" | "incr" | "drill" | "expire" | "binlogs",
    expression: string,
    description: string,
    scheduleTarget: scheduler.CfnSchedule.TargetProperty,
    window: scheduler.CfnSchedule.FlexibleTimeWindowProperty = spread,
  ) => {
    const one = new scheduler.CfnSchedule(scope, `${kind}-${cluster}`, {
      // Unique within the deployment's group; BINLOG_SCHEDULE_PREFIX bounds the cluster name.
      name: `rewind-${kind}-${cluster}`,
      groupName: names.scheduleGroup,
      description,
      scheduleExpression: expression,
      scheduleExpressionTimezone: config.schedules.timeZone,
      flexibleTimeWindow: window,
      state: "ENABLED",
      target: scheduleTarget,
    });
    one.node.addDependency(shared.group);
    made.push(one);
  };
  schedule(
    "full",
    config.schedules.full,
    `Full backup of ${cluster}`,
    target(shared.settings.backup.stateMachineArn, { cluster, type: "full" }),
  );
  if (config.schedules.incremental) {
    schedule(
      "incr",
      config.schedules.incremental,
      `Incremental backup of ${cluster} (a full one when its host holds no chain to continue)`,
      target(shared.settings.backup.stateMachineArn, { cluster, type: "incremental" }),
    );
  }
  schedule(
    "drill",
    config.schedules.drill,
    `Restore drill of ${cluster}`,
    target(shared.settings.drill.stateMachineArn, { cluster }),
  );
  schedule(
    "expire",
    config.schedules.retention,
    `PITR-aware retention of ${cluster} (deletes what no retained backup or the window needs)`,
    target(shared.settings.retention.functionArn, { cluster }),
  );
  const minutes = config.schedules.binlogIntervalMinutes;
  schedule(
    "binlogs",
    `rate(${minutes} ${minutes === 1 ? "minute" : "minutes"})`,
    `Binlog watchdog of ${cluster} (binlog-push on every tagged host: ships closed binlogs binlog-stream missed, reports the restorable lag)`,
    target(`arn:${Aws.PARTITION}:scheduler:::aws-sdk:ssm:sendCommand`, {
      DocumentName: shared.settings.documentName,
      Targets: [{ Key: `tag:${names.hostTag}`, Values: [cluster] }],
      Parameters: { Command: ["binlog-push"] },
      TimeoutSeconds: 600,
      MaxConcurrency: "100%",
      MaxErrors: "100%",
      Comment: `Rewind binlog shipping for ${cluster}`,
      CloudWatchOutputConfig: {
        CloudWatchOutputEnabled: true,
        CloudWatchLogGroupName: shared.settings.agentLogs.logGroupName,
      },
    }),
    // Every minute, on the minute: its lag metric is what the RPO alarm reads.
    { mode: "OFF" },
  );
  return made;
}
