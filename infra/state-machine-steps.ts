import { Duration } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as tasks from "aws-cdk-lib/aws-stepfunctions-tasks";
import type { Construct } from "constructs";
import type { ControlPlaneFunctions } from "./control-plane-functions.js";
import {
  acknowledge,
  arnWildcard,
  defaultPolicyOf,
  INSTANCE_WILDCARD,
  INSTANCE_WILDCARD_REASON,
} from "./nag.js";
import { type FailureState, statePath } from "./state-paths.js";

/** Paths every state machine's tails use. */
const at = statePath<FailureState>();

export type StateMachineName = "Backup" | "Restore" | "RestoreDrill";

/** What every Rewind state machine is built from. */
export interface RewindStateMachineProps {
  readonly functions: ControlPlaneFunctions;
  /** The Rewind-RunAgent document the agent steps send. */
  readonly documentName: string;
  /** The tag of the deployment's hosts, which the agent steps may run on. */
  readonly hostTag: string;
  /** The state machine's name (`Rewind-Backup`, `staging-Backup`: DeploymentNames.stateMachine). */
  readonly name: string;
}

/** A Lambda step whose result (the handler's return value) lands at `resultPath`. */
export function lambdaStep(
  scope: Construct,
  id: string,
  fn: lambda.IFunction,
  /** `undefined` passes the whole state input. */
  payload: Record<string, unknown> | undefined,
  resultPath: string,
  comment: string,
): tasks.LambdaInvoke {
  const step = new tasks.LambdaInvoke(scope, id, {
    lambdaFunction: fn,
    payload: payload ? sfn.TaskInput.fromObject(payload) : undefined,
    payloadResponseOnly: true,
    // "$" is the default; leaving it out also keeps aws-local-stepfunctions (which stores a
    // ResultPath of "$" under a key named "$") in step with Step Functions.
    resultPath: resultPath === "$" ? undefined : resultPath,
    comment,
  });
  // The account's Lambda concurrency reached (a fleet's executions at once): the invocation did
  // not run, so it is made again with backoff. CDK's own retry covers Lambda's service errors.
  step.addRetry({
    errors: ["Lambda.TooManyRequestsException"],
    interval: Duration.seconds(1),
    backoffRate: 2,
    maxAttempts: 6,
    maxDelay: Duration.seconds(30),
    jitterStrategy: sfn.JitterType.FULL,
  });
  return step;
}

/**
 * The end of a failed run: tell the operators (metric + SNS) and fail with the error name and
 * cause of the step that failed, so the console shows what broke and what to do.
 */
export function failureTail(
  scope: Construct,
  machine: StateMachineName,
  notify: lambda.IFunction,
): sfn.IChainable {
  const failed = new sfn.Fail(scope, "Failed", {
    comment: "Fails with the error and cause of the step that failed",
    errorPath: at("error.Error"),
    causePath: at("error.Cause"),
  });
  const report = lambdaStep(
    scope,
    "NotifyFailure",
    notify,
    {
      stateMachine: machine,
      succeeded: false,
      "input.$": "$$.Execution.Input",
      "executionId.$": "$$.Execution.Id",
      "error.$": at("error"),
    },
    at("notified"),
    "Metric and SNS message about the failure",
  );
  // A failure to notify must not hide the original error.
  report.addCatch(failed, { resultPath: at("notifyError") });
  return report.next(failed);
}

/** Catches every error of `step` into `$.error` and sends it to the failure tail. */
export function onFailure(step: sfn.TaskStateBase, tail: sfn.IChainable): void {
  step.addCatch(tail, { errors: [sfn.Errors.ALL], resultPath: at("error") });
}

export function successTail(
  scope: Construct,
  machine: StateMachineName,
  notify: lambda.IFunction,
  detail: Record<string, unknown>,
  tail: sfn.IChainable,
): sfn.Chain {
  const report = lambdaStep(
    scope,
    "NotifySuccess",
    notify,
    {
      stateMachine: machine,
      succeeded: true,
      "input.$": "$$.Execution.Input",
      "executionId.$": "$$.Execution.Id",
      detail,
    },
    at("notified"),
    "Metric (the alarms watch it) and, for restores, a message",
  );
  onFailure(report, tail);
  return report.next(new sfn.Succeed(scope, "Succeeded"));
}

/**
 * A Rewind state machine: JSONPath, X-Ray tracing, every execution's data logged for a year, and
 * the cdk-nag findings of its CDK-made role acknowledged.
 */
export function rewindStateMachine(
  scope: Construct,
  props: { name: string; comment: string; definition: sfn.IChainable; invokes: lambda.IFunction[] },
): sfn.StateMachine {
  const stateMachine = new sfn.StateMachine(scope, "StateMachine", {
    stateMachineName: props.name,
    comment: props.comment,
    definitionBody: sfn.DefinitionBody.fromChainable(props.definition),
    queryLanguage: sfn.QueryLanguage.JSON_PATH,
    tracingEnabled: true,
    logs: {
      destination: new logs.LogGroup(scope, "Logs", { retention: logs.RetentionDays.ONE_YEAR }),
      level: sfn.LogLevel.ALL,
      // Execution data holds task tokens (and restore targets): the logs keep only the events.
      includeExecutionData: false,
    },
  });
  acknowledgeStateMachineRole(stateMachine, props.invokes);
  return stateMachine;
}

/**
 * The acknowledged wildcards of a state machine's role: CDK's grants for log delivery and X-Ray
 * (no resource-level permissions), Lambda versions (`<function ARN>:*`), and tagged instances.
 */
function acknowledgeStateMachineRole(stateMachine: sfn.StateMachine, functions: lambda.IFunction[]): void {
  const policy = defaultPolicyOf(stateMachine.role);
  acknowledge(
    policy,
    "AwsSolutions-IAM5[Resource::*]",
    "Log delivery and X-Ray tracing APIs have no resource-level permissions (CDK's grants for logs and tracing)",
  );
  acknowledge(policy, INSTANCE_WILDCARD, INSTANCE_WILDCARD_REASON);
  for (const fn of functions) {
    acknowledge(policy, arnWildcard(fn, ":*"), "Invoking any version or alias of this one function");
  }
}
