import { Aws } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
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
}

export const SCHEDULE_GROUP = "rewind";

/**
 * EventBridge Scheduler (DESIGN §5, §7): full backups and drills start the state machines, retention
 * invokes its Lambda per cluster (off the backup's success path); binlog
 * shipping sends the SSM command straight to the cluster's tagged hosts every N minutes, with no
 * Step Functions execution per run. Failed invocations are retried, then kept in a dead-letter
 * queue.
 */
export class Schedules extends Construct {
  readonly deadLetters: sqs.Queue;
  readonly schedules: scheduler.CfnSchedule[] = [];

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    const { config } = props;
    const group = new scheduler.CfnScheduleGroup(this, "Group", { name: SCHEDULE_GROUP });
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
        conditions: {
          StringEquals: { "ssm:resourceTag/rewind:cluster": config.clusters.map((c) => c.name) },
        },
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

    const target = (arn: string, input: unknown): scheduler.CfnSchedule.TargetProperty => ({
      arn,
      roleArn: role.roleArn,
      input: JSON.stringify(input),
      deadLetterConfig: { arn: this.deadLetters.queueArn },
      retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
    });
    // Scheduler invokes a FLEXIBLE schedule at a random time within the window after the
    // scheduled one (Scheduler User Guide, "Configuring flexible time windows").
    const spread: scheduler.CfnSchedule.FlexibleTimeWindowProperty =
      config.schedules.spreadMinutes > 0
        ? { mode: "FLEXIBLE", maximumWindowInMinutes: config.schedules.spreadMinutes }
        : { mode: "OFF" };
    const schedule = (
      id: string,
      expression: string,
      description: string,
      scheduleTarget: scheduler.CfnSchedule.TargetProperty,
      window: scheduler.CfnSchedule.FlexibleTimeWindowProperty = spread,
    ) => {
      const made = new scheduler.CfnSchedule(this, id, {
        name: `rewind-${id}`,
        groupName: group.name,
        description,
        scheduleExpression: expression,
        scheduleExpressionTimezone: config.schedules.timeZone,
        flexibleTimeWindow: window,
        state: "ENABLED",
        target: scheduleTarget,
      });
      made.node.addDependency(group);
      this.schedules.push(made);
    };

    for (const cluster of config.clusters) {
      schedule(
        `full-${cluster.name}`,
        config.schedules.full,
        `Full backup of ${cluster.name}`,
        target(props.backup.stateMachineArn, { cluster: cluster.name, type: "full" }),
      );
      schedule(
        `drill-${cluster.name}`,
        config.schedules.drill,
        `Restore drill of ${cluster.name}`,
        target(props.drill.stateMachineArn, { cluster: cluster.name }),
      );
      schedule(
        `expire-${cluster.name}`,
        config.schedules.retention,
        `PITR-aware retention of ${cluster.name} (deletes what no retained backup or the window needs)`,
        target(props.retention.functionArn, { cluster: cluster.name }),
      );
      const minutes = config.schedules.binlogIntervalMinutes;
      schedule(
        `binlogs-${cluster.name}`,
        `rate(${minutes} ${minutes === 1 ? "minute" : "minutes"})`,
        `Binlog watchdog of ${cluster.name} (binlog-push on every tagged host: ships closed binlogs binlog-stream missed, reports the restorable lag)`,
        target(`arn:${Aws.PARTITION}:scheduler:::aws-sdk:ssm:sendCommand`, {
          DocumentName: props.documentName,
          Targets: [{ Key: "tag:rewind:cluster", Values: [cluster.name] }],
          Parameters: { Command: ["binlog-push"] },
          TimeoutSeconds: 600,
          MaxConcurrency: "100%",
          MaxErrors: "100%",
          Comment: `Rewind binlog shipping for ${cluster.name}`,
          CloudWatchOutputConfig: {
            CloudWatchOutputEnabled: true,
            CloudWatchLogGroupName: props.agentLogs.logGroupName,
          },
        }),
        // Every minute, on the minute: its lag metric is what the RPO alarm reads.
        { mode: "OFF" },
      );
    }
  }
}
