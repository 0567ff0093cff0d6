import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import type { DeploymentNames } from "../core/contracts/deployment.js";
import type { RewindConfig } from "./config.js";

/** A metric of the deployment's namespace for one cluster (the notify Lambda's carry `service`). */
export function clusterMetric(
  names: DeploymentNames,
  metricName: string,
  cluster: string,
  statistic: string,
  period: Duration,
  fromLambda = true,
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: names.metricsNamespace,
    metricName,
    dimensionsMap: fromLambda ? { Cluster: cluster, service: "rewind" } : { Cluster: cluster },
    statistic,
    period,
  });
}

/** An alarm on any occurrence of `metric` in a period (no data means none happened). */
export function anyOccurrence(metric: cloudwatch.IMetric, description: string): cloudwatch.AlarmProps {
  return {
    alarmDescription: description,
    metric,
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  };
}

export interface ClusterAlarmsProps {
  readonly cluster: string;
  readonly config: RewindConfig;
  readonly names: DeploymentNames;
  /** The operators' topic. */
  readonly topic: sns.ITopic;
}

/**
 * The alarms an on-call person needs for one cluster, each naming the cluster in the message they
 * receive: no successful backup in time, restorable lag above the RPO, two primaries, closed
 * binlogs held only as chunks, a failed drill. The fleet's graphs are on the shared dashboard
 * (Monitoring), which does not grow with the clusters.
 */
export class ClusterAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ClusterAlarmsProps) {
    super(scope, id);
    const { cluster, names } = props;
    const { alarms } = props.config;
    const action = new actions.SnsAction(props.topic);
    const alarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps) => {
      const made = new cloudwatch.Alarm(this, alarmId, alarmProps);
      made.addAlarmAction(action);
      this.alarms.push(made);
    };
    const onAny = (alarmId: string, metric: cloudwatch.IMetric, description: string) =>
      alarm(alarmId, anyOccurrence(metric, description));
    const backupMachine = names.stateMachine("Backup");
    alarm("NoRecentBackup", {
      alarmDescription: `No backup of ${cluster} succeeded in ${alarms.hoursWithoutBackup} hours: point-in-time restores grow longer and the window may break. Check the ${backupMachine} executions`,
      metric: clusterMetric(names, "BackupSucceeded", cluster, "Sum", Duration.hours(1)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: alarms.hoursWithoutBackup,
      datapointsToAlarm: alarms.hoursWithoutBackup,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    alarm("RestorableLag", {
      alarmDescription: `The latest point ${cluster} can be restored to is more than ${alarms.rpoSeconds} s behind now (or no host reports it): a restore now could lose that much. Check binlog-stream on the primary (systemctl status rewind-binlog-stream) and the binlog-push watchdog runs in SSM Run Command`,
      metric: clusterMetric(
        names,
        "RestorableLagSeconds",
        cluster,
        "Maximum",
        Duration.minutes(Math.max(5, props.config.schedules.binlogIntervalMinutes * 2)),
        false,
      ),
      threshold: alarms.rpoSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    onAny(
      "TwoPrimaries",
      clusterMetric(names, "TwoPrimaries", cluster, "Sum", Duration.minutes(5), false),
      `Two hosts of ${cluster} act as primary: one writes a history that is not the cluster's current one (an old primary still taking writes after a roll-back or failover). Its writes are kept apart and are not restored by default. Retire it or restore it as a replica; \`rewind-agent list\` shows the histories`,
    );
    alarm("ChunkOnlyBinlogs", {
      alarmDescription: `A closed binlog of ${cluster} has been held only as chunks for more than an hour: binlog-stream on the primary cannot ship it whole or cannot index it. Restores still reach it through its chunks; the whole file and its index record are what keep listings and retention cheap. The watchdog's closedError (SSM Run Command output of binlog-push) and \`rewind-agent list\` say which files and why`,
      metric: clusterMetric(names, "ChunkOnlyBinlogSeconds", cluster, "Maximum", Duration.minutes(5), false),
      threshold: 3600,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    onAny(
      "DrillFailed",
      clusterMetric(names, "DrillFailed", cluster, "Sum", Duration.hours(1)),
      `The restore drill of ${cluster} failed: the newest backup may not restore. Open the ${names.stateMachine("RestoreDrill")} execution for the error`,
    );
  }
}
