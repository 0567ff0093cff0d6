import { Duration } from "aws-cdk-lib";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { ErrorNames } from "../core/errors.js";
import { agentTask } from "./agent-task.js";
import {
  failureTail,
  lambdaStep,
  onFailure,
  type RewindStateMachineProps,
  rewindStateMachine,
  successTail,
} from "./state-machine-steps.js";
import { type BackupState, fromState, statePath, type VerifyInput } from "./state-paths.js";

export interface BackupStateMachineProps extends RewindStateMachineProps {
  /**
   * How long the backup may go without a heartbeat from the agent (it sends one a minute).
   * @default Duration.minutes(10)
   */
  readonly heartbeat?: Duration;
  /**
   * The longest a backup may run.
   * @default Duration.hours(24)
   */
  readonly timeout?: Duration;
}

/**
 * Backup (DESIGN §5): `{"cluster":"orders","type":"full"}` → select the source by policy → the
 * agent streams the backup (task token) → verify against S3 → metric. Retention runs on its own
 * schedule (infra/schedules.ts), so it never fails a good backup.
 * Any failure: SNS + Fail with the failing step's error name and cause.
 */
export class BackupStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: BackupStateMachineProps) {
    super(scope, id);
    const fns = props.functions;
    const tail = failureTail(this, "Backup", fns.notify);
    const at = statePath<BackupState>();

    const select = lambdaStep(
      this,
      "SelectSource",
      fns.selectSource,
      undefined,
      "$",
      "Validates the input, asks every host for its status, picks the source by policy",
    );
    onFailure(select, tail);

    const backup = agentTask(this, "RunBackup", {
      documentName: props.documentName,
      hostTag: props.hostTag,
      instanceIdPath: at("source.instanceId"),
      comment: "rewind-agent backup on the chosen source",
      parameters: { Command: "backup", Type: at("type") },
      heartbeat: props.heartbeat ?? Duration.minutes(10),
      timeout: props.timeout ?? Duration.hours(24),
      resultPath: at("backup"),
    });
    // Another backup or a restore holds the host's lock: wait for it rather than fail.
    backup.addRetry({
      errors: [ErrorNames.busy],
      interval: Duration.minutes(10),
      maxAttempts: 3,
      backoffRate: 1.5,
    });
    onFailure(backup, tail);

    const verify = lambdaStep(
      this,
      "VerifyBackup",
      fns.verify,
      fromState<BackupState, VerifyInput>({ cluster: "cluster", backupId: "backup.backupId" }),
      at("verify"),
      "Checks every segment object's size and part checksums against the manifest",
    );
    onFailure(verify, tail);

    const done = successTail(
      this,
      "Backup",
      fns.notify,
      {
        "backupId.$": at("backup.backupId"),
        "storedBytes.$": at("backup.storedBytes"),
        "seconds.$": at("backup.seconds"),
        "source.$": at("source"),
      },
      tail,
    );

    this.stateMachine = rewindStateMachine(this, {
      name: props.name,
      comment: "Rewind full backup of one cluster",
      definition: select.next(backup).next(verify).next(done),
      invokes: [fns.selectSource, fns.verify, fns.notify],
    });
  }
}
