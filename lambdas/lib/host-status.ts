import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
  type SSMClient,
} from "@aws-sdk/client-ssm";
import type { HostStatus } from "./source-policy.js";

export interface AskOptions {
  readonly documentName: string;
  /** How long to wait for the agents to answer. */
  readonly timeoutSeconds: number;
  readonly pollMilliseconds?: number;
}

/** The online managed instances tagged `rewind:cluster=<cluster>`. */
export async function clusterInstances(ssm: SSMClient, cluster: string): Promise<string[]> {
  const ids: string[] = [];
  let token: string | undefined;
  do {
    const page = await ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [
          { Key: "tag:rewind:cluster", Values: [cluster] },
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

/** The agent's result is the last line of its stdout: `{"ok":true,"command":"status","result":{…}}`. */
export function readAgentResult(
  stdout: string,
): { ok: boolean; result?: unknown; error?: { name: string; message: string } } | undefined {
  const last = stdout.trim().split("\n").at(-1);
  if (!last) return undefined;
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

/**
 * Runs `rewind-agent status` on each host through the Rewind-RunAgent document and collects the
 * answers. A host that fails or does not answer in time is reported with the reason, not dropped.
 */
export async function askHostStatus(
  ssm: SSMClient,
  instanceIds: readonly string[],
  options: AskOptions,
): Promise<HostStatus[]> {
  if (instanceIds.length === 0) return [];
  const sent = await ssm.send(
    new SendCommandCommand({
      DocumentName: options.documentName,
      InstanceIds: [...instanceIds],
      Parameters: { Command: ["status"] },
      TimeoutSeconds: Math.max(30, options.timeoutSeconds),
      Comment: "Rewind select-source: agent status",
    }),
  );
  const commandId = sent.Command!.CommandId!;
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  const answers = new Map<string, HostStatus>();
  while (answers.size < instanceIds.length) {
    for (const instanceId of instanceIds.filter((id) => !answers.has(id))) {
      let invocation: GetCommandInvocationCommandOutput;
      try {
        invocation = await ssm.send(
          new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
        );
      } catch (error) {
        if ((error as { name?: string }).name === "InvocationDoesNotExist") continue;
        throw error;
      }
      if (!TERMINAL.has(invocation.Status ?? "")) continue;
      const result = readAgentResult(invocation.StandardOutputContent ?? "");
      if (invocation.Status === "Success" && result?.ok) {
        answers.set(instanceId, { instanceId, status: result.result as HostStatus["status"] });
      } else {
        const reason = result?.error
          ? `${result.error.name}: ${result.error.message}`
          : (invocation.StandardErrorContent ?? "").trim().split("\n").at(-1);
        answers.set(instanceId, {
          instanceId,
          problem: `agent status ${invocation.Status}${reason ? ` (${reason})` : ""}`,
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
