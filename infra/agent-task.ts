import { Aws, Duration } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as tasks from "aws-cdk-lib/aws-stepfunctions-tasks";
import type { Construct } from "constructs";

export interface AgentTaskProps {
  readonly documentName: string;
  /** JSONPath to the instance id the command runs on. */
  readonly instanceIdPath: string;
  readonly comment: string;
  /** Document parameters: a literal, or a JSONPath starting with `$` (each becomes a one-element list). */
  readonly parameters: Record<string, string>;
  /** The agent sends a heartbeat every minute (heartbeatSeconds); this long without one fails the task. */
  readonly heartbeat: Duration;
  readonly timeout: Duration;
  readonly resultPath: string;
  /**
   * The deployment's host tag (`rewind:cluster`): the command may run only on instances that carry
   * it, whatever its value, so the policy stays the same size however many clusters there are; the
   * host itself refuses a request for another cluster (`--expect-cluster`).
   */
  readonly hostTag: string;
}

/**
 * One agent command on one host: ssm:sendCommand of Rewind-RunAgent with the task token as a
 * document parameter; the agent reports SendTaskSuccess/Failure itself (results never travel
 * through SSM's truncated output). Heartbeat and task timeouts catch a host that died or hangs.
 */
/**
 * SendCommand refused for its rate (a fleet's schedules starting together): no command was
 * created, so it is sent again with exponential backoff and full jitter. Step Functions names an
 * SDK integration's error `<Service>.<Error>` ("Learning to use AWS service SDK integrations",
 * Step Functions Developer Guide); SSM's throttling error is ThrottlingException.
 */
export const SEND_COMMAND_THROTTLED = "Ssm.ThrottlingException";

export function agentTask(scope: Construct, id: string, props: AgentTaskProps): tasks.CallAwsService {
  const parameters: Record<string, unknown> = { Command: [props.parameters.Command ?? "status"] };
  for (const [name, value] of Object.entries(props.parameters)) {
    if (name === "Command") continue;
    if (value.startsWith("$")) parameters[`${name}.$`] = `States.Array(${value})`;
    else parameters[name] = [value];
  }
  parameters["TaskToken.$"] = "States.Array($$.Task.Token)";
  // Every Rewind state machine's input names its cluster: the host refuses a request for another.
  parameters["Cluster.$"] = "States.Array($.cluster)";
  const task = new tasks.CallAwsService(scope, id, {
    comment: props.comment,
    service: "ssm",
    action: "sendCommand",
    integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
    parameters: {
      DocumentName: props.documentName,
      InstanceIds: sfn.JsonPath.array(sfn.JsonPath.stringAt(props.instanceIdPath)),
      Comment: props.comment,
      // How long SSM waits for the host to pick the command up; the run itself is bounded by the
      // document's timeout and this task's heartbeat and timeout.
      TimeoutSeconds: 600,
      Parameters: parameters,
    },
    iamResources: [`arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:document/${props.documentName}`],
    additionalIamStatements: [
      new iam.PolicyStatement({
        actions: ["ssm:SendCommand"],
        resources: [`arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:instance/*`],
        conditions: { StringLike: { [`ssm:resourceTag/${props.hostTag}`]: "*" } },
      }),
    ],
    heartbeatTimeout: sfn.Timeout.duration(props.heartbeat),
    taskTimeout: sfn.Timeout.duration(props.timeout),
    resultPath: props.resultPath,
  });
  task.addRetry({
    errors: [SEND_COMMAND_THROTTLED],
    interval: Duration.seconds(2),
    backoffRate: 2,
    maxAttempts: 8,
    maxDelay: Duration.minutes(1),
    jitterStrategy: sfn.JitterType.FULL,
  });
  return task;
}
