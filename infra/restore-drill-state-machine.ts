import { Duration } from "aws-cdk-lib";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
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
import {
  type BackupInput,
  type DrillState,
  fromState,
  type RestoreInput,
  statePath,
  type VerifyInput,
} from "./state-paths.js";

export interface RestoreDrillStateMachineProps extends RewindStateMachineProps {
  /**
   * Where the drill restores on the host: a scratch datadir, served by a throwaway server on
   * its own port, removed when the drill is done.
   * @default /var/tmp/rewind/drill
   */
  readonly scratchDatadir?: string;
  /** @default Duration.hours(24) */
  readonly timeout?: Duration;
}

/**
 * RestoreDrill (DESIGN §2): proves every week that the newest backup restores. `{"cluster":"orders"}`
 * → pick a host by the cluster's source policy → plan the latest point → verify → restore into a
 * scratch datadir served by a private server, replay, CHECK TABLE, clean up → DrillSucceeded /
 * DrillFailed.
 */
export class RestoreDrillStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: RestoreDrillStateMachineProps) {
    super(scope, id);
    const fns = props.functions;
    const tail = failureTail(this, "RestoreDrill", fns.notify);
    const at = statePath<DrillState>();

    const select = lambdaStep(
      this,
      "SelectDrillHost",
      fns.selectSource,
      { ...fromState<DrillState, BackupInput>({ cluster: "cluster" }), type: "full" },
      at("selected"),
      "Picks the host to drill on by the cluster's source policy (a healthy replica first)",
    );
    onFailure(select, tail);

    const plan = lambdaStep(
      this,
      "PlanDrill",
      fns.planRestore,
      {
        input: {
          ...fromState<DrillState, RestoreInput>({
            cluster: "cluster",
            targetInstanceId: "selected.source.instanceId",
          }),
          latest: true,
          mode: "scratch",
          datadir: props.scratchDatadir ?? "/var/tmp/rewind/drill",
        },
        "restoreId.$": "$$.Execution.Name",
      },
      at("plan"),
      "Plans a restore of the newest restorable point into a scratch datadir",
    );
    onFailure(plan, tail);

    const verify = lambdaStep(
      this,
      "VerifyDrill",
      fns.verify,
      fromState<DrillState, VerifyInput>({
        cluster: "plan.cluster",
        backupId: "plan.backupId",
        binlogs: "plan.binlogs",
      }),
      at("verify"),
      "Checks the backup and binlogs against their manifests",
    );
    onFailure(verify, tail);

    const drill = agentTask(this, "RunDrill", {
      documentName: props.documentName,
      hostTag: props.hostTag,
      instanceIdPath: at("plan.targetInstanceId"),
      comment: "rewind-agent restore --scratch: restore, replay, check, remove",
      // The plan says mode scratch and the datadir.
      parameters: { Command: "restore", Plan: at("plan.planUri") },
      heartbeat: Duration.minutes(10),
      timeout: props.timeout ?? Duration.hours(24),
      resultPath: at("restore"),
    });
    onFailure(drill, tail);

    const done = successTail(
      this,
      "RestoreDrill",
      fns.notify,
      {
        "backupId.$": at("plan.backupId"),
        "target.$": at("plan.target"),
        "host.$": at("plan.targetInstanceId"),
        "restore.$": at("restore"),
      },
      tail,
    );

    this.stateMachine = rewindStateMachine(this, {
      name: props.name,
      comment: "Rewind restore drill: the newest backup, restored and checked on a scratch datadir",
      definition: select.next(plan).next(verify).next(drill).next(done),
      invokes: [fns.selectSource, fns.planRestore, fns.verify, fns.notify],
    });
  }
}
