import { Aws, Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import type { DeploymentNames } from "../core/contracts/deployment.js";
import type { BinlogPushResult } from "../host-agent/commands/binlog-push.js";
import { anyOccurrence } from "./cluster-alarms.js";
import type { RewindConfig } from "./config.js";
import { statePath, type WatchdogLine } from "./state-paths.js";

/** Paths into the watchdog's result line (what the metric filters read). */
const line = statePath<WatchdogLine>();

export interface MonitoringProps {
  readonly config: RewindConfig;
  readonly names: DeploymentNames;
}

/**
 * A graph of one metric for every cluster that reports it: a CloudWatch SEARCH expression, so the
 * dashboard stays the same size however many clusters there are (a widget per cluster would pass
 * CloudWatch's 500 widgets a dashboard at about 160 clusters).
 */
function everyCluster(
  namespace: string,
  metricName: string,
  statistic: string,
  period: Duration,
  withService: boolean,
): cloudwatch.MathExpression {
  const schema = withService ? `{${namespace},Cluster,service}` : `{${namespace},Cluster}`;
  return new cloudwatch.MathExpression({
    expression: `SEARCH('${schema} MetricName="${metricName}"', '${statistic}', ${period.toSeconds()})`,
    usingMetrics: {},
    label: "",
    period,
  });
}

/**
 * The operators' topic, the log group the binlog watchdog writes its results to (a metric filter
 * turns each run's report into RestorableLagSeconds: how far the latest restorable point is
 * behind now), and the dashboard. Alarms are added once the
 * state machines and schedules exist.
 */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly topicKey: kms.Key;
  /** SSM writes binlog-push output here; hosts need write access. */
  readonly agentLogs: logs.LogGroup;
  readonly dashboard: cloudwatch.Dashboard;
  private readonly alarmAction: actions.SnsAction;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const namespace = props.names.metricsNamespace;
    const key = new kms.Key(this, "TopicKey", {
      description: "Rewind notifications topic",
      enableKeyRotation: true,
    });
    this.topicKey = key;
    // CloudWatch alarms publish to an encrypted topic only when they may use its key.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "CloudWatchAlarmsPublish",
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: ["*"],
        // Only this account's alarms (confused deputy).
        conditions: { StringEquals: { "aws:SourceAccount": Aws.ACCOUNT_ID } },
      }),
    );
    this.topic = new sns.Topic(this, "Topic", {
      displayName: "Rewind backups and restores",
      masterKey: key,
      enforceSSL: true,
    });
    if (props.config.alarms.notificationEmail) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.config.alarms.notificationEmail));
    }
    this.alarmAction = new actions.SnsAction(this.topic);
    this.agentLogs = new logs.LogGroup(this, "AgentLogs", { retention: logs.RetentionDays.ONE_MONTH });
    // The watchdog's result line: {"ok":true,"command":"binlog-push","cluster":"orders","result":{…}},
    // one metric per cluster from a field of its result.
    const fromWatchdog = (
      id: string,
      metricName: string,
      field: keyof BinlogPushResult & string,
      comparison: ">=" | ">" | "=",
      threshold: number,
      value: "1" | ReturnType<typeof line>,
      unit?: cloudwatch.Unit,
    ) =>
      new logs.MetricFilter(this, id, {
        logGroup: this.agentLogs,
        filterPattern: logs.FilterPattern.all(
          logs.FilterPattern.stringValue(line("command"), "=", "binlog-push"),
          logs.FilterPattern.numberValue(line(`result.${field}`), comparison, threshold),
        ),
        metricNamespace: namespace,
        metricName,
        metricValue: value,
        dimensions: { Cluster: line("cluster") },
        ...(unit ? { unit } : {}),
      });
    // Only the shipping host (the primary) reports a number; replicas report null.
    fromWatchdog(
      "RestorableLag",
      "RestorableLagSeconds",
      "lagSeconds",
      ">=",
      0,
      line("result.lagSeconds"),
      cloudwatch.Unit.SECONDS,
    );
    // A host that ships as the primary of a history that is not the cluster's current one (an old
    // primary still writing after a roll-back): {"result":{"historyConflict":1,…}}.
    fromWatchdog("TwoPrimaries", "TwoPrimaries", "historyConflict", "=", 1, "1");
    // Closed binlogs the shipping host has not shipped whole and indexed yet (held only as chunks):
    // published only while there are some. A custom metric is billed for every hour it receives a
    // value ($0.30 a metric-month), and this one is 0 nearly always; its alarm treats no data as
    // none held.
    fromWatchdog(
      "ChunkOnlyBinlogs",
      "ChunkOnlyBinlogSeconds",
      "chunkOnlySeconds",
      ">",
      0,
      line("result.chunkOnlySeconds"),
      cloudwatch.Unit.SECONDS,
    );
    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", { dashboardName: props.names.dashboard });
    // The fleet: one line per cluster in each graph (the per-cluster alarms are in each cluster's
    // nested stack, ClusterAlarms).
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Backups succeeded, per cluster",
        left: [everyCluster(namespace, "BackupSucceeded", "Sum", Duration.hours(1), true)],
      }),
      new cloudwatch.GraphWidget({
        title: "Latest restorable time, seconds behind now, per cluster",
        left: [everyCluster(namespace, "RestorableLagSeconds", "Maximum", Duration.minutes(5), false)],
        leftAnnotations: [{ value: props.config.alarms.rpoSeconds, label: "RPO" }],
      }),
      new cloudwatch.GraphWidget({
        title: "Closed binlogs held only as chunks (seconds; alarm above 3600), per cluster",
        left: [everyCluster(namespace, "ChunkOnlyBinlogSeconds", "Maximum", Duration.minutes(5), false)],
      }),
      new cloudwatch.GraphWidget({
        title: "Drills failed, per cluster",
        left: [everyCluster(namespace, "DrillFailed", "Sum", Duration.days(1), true)],
      }),
    );
  }

  private alarmOnAny(id: string, metric: cloudwatch.IMetric, description: string): cloudwatch.Alarm {
    return this.alarm(id, anyOccurrence(metric, description));
  }

  private alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, props);
    alarm.addAlarmAction(this.alarmAction);
    return alarm;
  }

  /** Any failed execution of a state machine. */
  watchStateMachine(name: string, stateMachine: sfn.StateMachine): void {
    const failed = stateMachine.metricFailed({ period: Duration.minutes(5), statistic: "Sum" });
    this.alarmOnAny(
      `ExecutionsFailed-${name}`,
      failed,
      `A ${name} execution failed; the SNS message and the execution's history say which step and why`,
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: `${name} executions`,
        left: [stateMachine.metricSucceeded({ period: Duration.hours(1) }), failed],
      }),
    );
  }

  /** The schedules themselves: invocations that failed or were dropped, and the dead-letter queue. */
  /**
   * Retention runs per cluster on its own schedule (Scheduler invokes the Lambda asynchronously):
   * a failed run shows only in the function's errors.
   */
  watchRetention(retention: lambda.IFunction): void {
    const errors = retention.metricErrors({ period: Duration.hours(1), statistic: "Sum" });
    this.alarmOnAny(
      "RetentionFailed",
      errors,
      "A scheduled retention run failed. Backups are unaffected (retention is off their path), but what it should have expired stays, and storage grows, until a run succeeds. The Retention Lambda's log names the cluster and the error",
    );
    this.dashboard.addWidgets(new cloudwatch.GraphWidget({ title: "Retention errors", left: [errors] }));
  }

  watchSchedules(groupName: string, deadLetters: cloudwatch.IMetric): void {
    const targetErrors = new cloudwatch.Metric({
      namespace: "AWS/Scheduler",
      metricName: "TargetErrorCount",
      dimensionsMap: { ScheduleGroup: groupName },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
    this.alarmOnAny(
      "ScheduleTargetErrors",
      targetErrors,
      "EventBridge Scheduler could not start a Rewind backup, drill, retention or binlog shipping run; check the schedule's role and target",
    );
    this.alarmOnAny(
      "ScheduleDeadLetters",
      deadLetters,
      "Scheduled Rewind runs were given up on and sit in the dead-letter queue; read a message to see which and why",
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: "Schedules", left: [targetErrors, deadLetters] }),
    );
  }
}
