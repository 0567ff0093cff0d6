import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
  type SSMClient,
} from "@aws-sdk/client-ssm";
import { AGENT_SHELL_STEP, AgentStatus, parseAgentResultLine } from "../../core/agent-output.js";
import type { HostStatus } from "./source-policy.js";

/** The SSM API's limit on InstanceIds in one SendCommand. */
export const SEND_COMMAND_MAX_INSTANCES = 50;

export interface AskOptions {
  readonly documentName: string;
  /** How long to wait for the agents to answer. */
  readonly timeoutSeconds: number;
  readonly pollMilliseconds?: number;
}

/** The online managed instances tagged `<hostTag>=<cluster>` (`rewind:cluster=orders`). */
export async function clusterInstances(ssm: SSMClient, cluster: string, hostTag: string): Promise<string[]> {
  const ids: string[] = [];
  let token: string | undefined;
  do {
    const page = await ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: `tag:${hostTag}`, Values: [cluster] },
          { Key: "PingStatus", Values: ["Online"] },
        ],
        NextToken: token,
      }),
    );
    ids.push(...(page.InstanceInformationList ?? []).map((info) => info.InstanceId!));
    token = page.NextToken;
  } while (token);
  return ids.sort();
}

const TERMINAL = new Set([
  "Success",
  "Failed",
  "Cancelled",
  "TimedOut",
  "Cancelling",
  "Undeliverable",
  "Terminated",
  "InvalidPlatform",
  "AccessDenied",
  "DeliveryTimedOut",
  "ExecutionTimedOut",
]);

/** What select-source reads of a host's status; the rest of the shape is the agent's own. */
const SelectionFields = AgentStatus.pick({
  role: true,
  readOnly: true,
  binlogSource: true,
  replication: true,
});

/** One host's answer to an agent command: its result line, or why there is none. */
export interface HostAnswer {
  readonly instanceId: string;
  /** The agent's result, when it succeeded. */
  readonly result?: unknown;
  /** Why it did not: the agent's error, the command's status, or no answer in time. */
  readonly problem?: string;
}

/**
 * Runs one agent command on each host through the Rewind-RunAgent document and collects the
 * answers. A host that fails or does not answer in time is reported with the reason, not dropped.
 */
export async function runOnHosts(
  ssm: SSMClient,
  instanceIds: readonly string[],
  parameters: Record<string, string[]>,
  options: AskOptions & { readonly comment: string },
): Promise<HostAnswer[]> {
  if (instanceIds.length === 0) return [];
  // SendCommand takes at most 50 instance ids: larger clusters are asked in batches.
  const commandOf = new Map<string, string>();
  for (let at = 0; at < instanceIds.length; at += SEND_COMMAND_MAX_INSTANCES) {
    const batch = instanceIds.slice(at, at + SEND_COMMAND_MAX_INSTANCES);
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: options.documentName,
        InstanceIds: [...batch],
        Parameters: parameters,
        TimeoutSeconds: Math.max(30, options.timeoutSeconds),
        Comment: options.comment,
      }),
    );
    for (const id of batch) commandOf.set(id, sent.Command!.CommandId!);
  }
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  const answers = new Map<string, HostAnswer>();
  const command = parameters.Command?.[0] ?? "the command";
  while (answers.size < instanceIds.length) {
    for (const instanceId of instanceIds.filter((id) => !answers.has(id))) {
      let invocation: GetCommandInvocationCommandOutput;
      try {
        invocation = await ssm.send(
          // Required for a document of more than one step (InvalidPluginName otherwise).
          new GetCommandInvocationCommand({
            CommandId: commandOf.get(instanceId)!,
            InstanceId: instanceId,
            PluginName: AGENT_SHELL_STEP,
          }),
        );
      } catch (error) {
        if ((error as { name?: string }).name === "InvocationDoesNotExist") continue;
        throw error;
      }
      if (!TERMINAL.has(invocation.Status ?? "")) continue;
      const line = parseAgentResultLine(invocation.StandardOutputContent ?? "");
      if (invocation.Status === "Success" && line?.ok) {
        answers.set(instanceId, { instanceId, result: line.result });
      } else {
        const reason =
          line && !line.ok
            ? `${line.error.name}: ${line.error.message}`
            : (invocation.StandardErrorContent ?? "").trim().split("\n").at(-1);
        answers.set(instanceId, {
          instanceId,
          problem: `agent ${command} ${invocation.Status}${reason ? ` (${reason})` : ""}`,
        });
      }
    }
    if (answers.size === instanceIds.length) break;
    if (Date.now() > deadline) {
      for (const id of instanceIds.filter((candidate) => !answers.has(candidate)))
        answers.set(id, { instanceId: id, problem: `no answer within ${options.timeoutSeconds}s` });
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMilliseconds ?? 2000));
  }
  return instanceIds.map((id) => answers.get(id)!);
}

/** `rewind-agent status` on each host, read as what select-source needs. */
export async function askHostStatus(
  ssm: SSMClient,
  instanceIds: readonly string[],
  options: AskOptions,
): Promise<HostStatus[]> {
  const answers = await runOnHosts(
    ssm,
    instanceIds,
    { Command: ["status"] },
    {
      ...options,
      comment: "Rewind select-source: agent status",
    },
  );
  return answers.map(({ instanceId, result, problem }) => {
    if (problem) return { instanceId, problem };
    const status = SelectionFields.safeParse(result);
    if (status.success) return { instanceId, status: status.data };
    return {
      instanceId,
      problem: `agent status Success (unexpected status output: ${status.error.issues[0]?.path.join(".")}: ${status.error.issues[0]?.message})`,
    };
  });
}
