import { Duration } from "aws-cdk-lib";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { agentTask } from "./agent-task.js";
import {
  failureTail,
  lambdaStep,
  onFailure,
  type RewindStateMachineProps,
  rewindStateMachine,
  successTail,
} from "./state-machine-steps.js";
import { fromState, type RestoreState, statePath, type VerifyInput } from "./state-paths.js";

export interface RestoreStateMachineProps extends RewindStateMachineProps {
  /**
   * How long the restore may go without a heartbeat from the agent.
   * @default Duration.minutes(10)
   */
  readonly heartbeat?: Duration;
  /**
   * The longest a restore may run (SSM allows 48 hours).
   * @default Duration.hours(48)
   */
  readonly timeout?: Duration;
}

/**
 * Restore (DESIGN §5), started by an on-call DBA from the console:
 * `{"cluster":"orders","targetInstanceId":"i-…","pointInTime":"2026-11-21T10:15:00Z"}` (or gtid,
 * backupId, latest; mode replace|replica|scratch; dryRun) → plan (refuses gaps) → verify the
 * backup and binlogs in S3 → the agent restores and replays to the target → health check.
 */
export class RestoreStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: RestoreStateMachineProps) {
    super(scope, id);
    const fns = props.functions;
    const tail = failureTail(this, "Restore", fns.notify);
    const at = statePath<RestoreState>();

    const plan = lambdaStep(
      this,
      "PlanRestore",
      fns.planRestore,
      { "input.$": "$", "restoreId.$": "$$.Execution.Name" },
      at("plan"),
      "Validates the input and plans the restore: the full backup before the target and the binlogs from its position",
    );
    onFailure(plan, tail);

    const planOnly = new sfn.Succeed(this, "PlanOnly", {
      comment: "dryRun: the plan, nothing restored",
      outputPath: at("plan"),
    });

    const verify = lambdaStep(
      this,
      "VerifyBackup",
      fns.verify,
      fromState<RestoreState, VerifyInput>({
        cluster: "plan.cluster",
        backupId: "plan.backupId",
        binlogs: "plan.binlogs",
      }),
      at("verify"),
      "Checks the backup and every binlog of the plan against their manifests before any datadir is touched",
    );
    onFailure(verify, tail);

    const restore = agentTask(this, "RunRestore", {
      documentName: props.documentName,
      hostTag: props.hostTag,
      instanceIdPath: at("plan.targetInstanceId"),
      comment: "rewind-agent restore --plan on the target host",
      // The plan is the one source of how to restore (mode, datadir, replica source, tables).
      parameters: { Command: "restore", Plan: at("plan.planUri") },
      heartbeat: props.heartbeat ?? Duration.minutes(10),
      timeout: props.timeout ?? Duration.hours(48),
      resultPath: at("restore"),
    });
    onFailure(restore, tail);

    const health = agentTask(this, "HealthCheck", {
      documentName: props.documentName,
      hostTag: props.hostTag,
      instanceIdPath: at("plan.targetInstanceId"),
      comment: "rewind-agent status on the restored server",
      parameters: { Command: "status" },
      heartbeat: Duration.minutes(5),
      timeout: Duration.minutes(15),
      resultPath: at("health"),
    });
    onFailure(health, tail);

    const replicationBroken = new sfn.Pass(this, "ReplicationNotRunning", {
      comment: "mode replica, but the restored server does not replicate",
      result: sfn.Result.fromObject({
        Error: "ReplicationNotRunning",
        Cause:
          "The restore finished but the server is not replicating from the primary. The restored data is intact; check SHOW REPLICA STATUS on the target and start replication",
      }),
      resultPath: at("error"),
    });
    replicationBroken.next(tail);

    const done = successTail(
      this,
      "Restore",
      fns.notify,
      {
        "restoreId.$": at("plan.restoreId"),
        "backupId.$": at("plan.backupId"),
        "target.$": at("plan.target"),
        "mode.$": at("plan.mode"),
        "restore.$": at("restore"),
      },
      tail,
    );

    const checkReplication = new sfn.Choice(this, "ReplicaMode?")
      .when(
        sfn.Condition.and(
          sfn.Condition.stringEquals(at("plan.mode"), "replica"),
          sfn.Condition.not(sfn.Condition.stringEquals(at("health.role"), "replica")),
        ),
        replicationBroken,
      )
      .otherwise(done);

    // A scratch restore's server is gone once the agent has checked it; there is nothing to ask.
    const afterRestore = new sfn.Choice(this, "ScratchMode?")
      .when(sfn.Condition.stringEquals(at("plan.mode"), "scratch"), done)
      .otherwise(health.next(checkReplication));

    const definition = plan.next(
      new sfn.Choice(this, "DryRun?")
        .when(sfn.Condition.booleanEquals(at("plan.dryRun"), true), planOnly)
        .otherwise(verify.next(restore).next(afterRestore)),
    );

    this.stateMachine = rewindStateMachine(this, {
      name: props.name,
      comment: "Rewind restore of one cluster to a time, a GTID or a backup",
      definition,
      invokes: [fns.planRestore, fns.verify, fns.notify],
    });
  }
}
