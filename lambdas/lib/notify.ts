import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import { z } from "zod";

/** What the state machines report at their end, success or failure. */
export const Outcome = z.object({
  stateMachine: z.enum(["Backup", "Restore", "RestoreDrill"]),
  /** The execution's input as the operator or the schedule gave it (it may be the bad input). */
  input: z.unknown(),
  succeeded: z.boolean(),
  executionId: z.string().optional(),
  /** Present on failure: the States error and cause Step Functions caught. */
  error: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
  /** Present on success: backup id, sizes, restore target, … */
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type Outcome = z.infer<typeof Outcome>;

/** The Lambda error payload in a Cause is JSON ({"errorType","errorMessage",…}); show its message. */
export function readableCause(cause: string | undefined): string {
  if (!cause) return "(no cause given)";
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string; errorType?: string };
    if (parsed.errorMessage) return parsed.errorMessage;
  } catch {
    // Not JSON: the agent's own cause text.
  }
  return cause;
}

/** The cluster named in the input, if it names one. */
export function clusterOf(outcome: Outcome): string {
  const cluster = (outcome.input as { cluster?: unknown } | null)?.cluster;
  return typeof cluster === "string" && cluster.length > 0 ? cluster : "(no cluster in input)";
}

export function describeOutcome(outcome: Outcome): { subject: string; message: string } {
  const what = `${outcome.stateMachine} of ${clusterOf(outcome)}`;
  if (outcome.succeeded) {
    return {
      subject: `Rewind: ${what} succeeded`,
      message: [
        `${what} succeeded.`,
        outcome.executionId ? `Execution: ${outcome.executionId}` : "",
        JSON.stringify(outcome.detail ?? {}, null, 2),
      ]
        .filter(Boolean)
        .join("\n"),
    };
  }
  const error = outcome.error?.Error ?? "UnknownError";
  return {
    subject: `Rewind: ${what} FAILED (${error})`.slice(0, 99),
    message: [
      `${what} failed with ${error}.`,
      readableCause(outcome.error?.Cause),
      outcome.executionId
        ? `Execution: ${outcome.executionId} (open it in the Step Functions console for every step's input and output)`
        : "",
    ]
      .filter(Boolean)
      .join("\n\n"),
  };
}

export async function publishOutcome(sns: SNSClient, topicArn: string, outcome: Outcome): Promise<void> {
  const { subject, message } = describeOutcome(outcome);
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subject,
      Message: message,
      MessageAttributes: {
        cluster: { DataType: "String", StringValue: clusterOf(outcome) },
        outcome: { DataType: "String", StringValue: outcome.succeeded ? "succeeded" : "failed" },
      },
    }),
  );
}
