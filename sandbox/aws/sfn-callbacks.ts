import type http from "node:http";
import type { SandboxIam } from "./iam.js";
import { AwsApiError, jsonCaller, serveAwsJson } from "./json-endpoint.js";
import type { RequestCounts } from "./request-counts.js";

export type TaskReport =
  | { readonly kind: "success"; readonly output: unknown }
  | { readonly kind: "failure"; readonly error: string; readonly cause: string };

interface Waiting {
  lastHeartbeat: number;
  heartbeats: number;
  report?: TaskReport;
  notify?: () => void;
}

/**
 * Where the agents' `--task-token` reports land in the sandbox: a Step Functions endpoint that
 * accepts SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat (JSON 1.0) and hands each report
 * to the task waiting on that token.
 */
export class TaskCallbacks {
  private readonly waiting = new Map<string, Waiting>();
  /** Tokens whose task is over (reported, timed out, or its command ended). */
  private readonly ended = new Set<string>();

  constructor(
    private readonly iam?: SandboxIam,
    private readonly counts?: RequestCounts,
  ) {}

  private server?: http.Server;
  endpoint = "";

  async listen(): Promise<string> {
    ({ server: this.server, endpoint: this.endpoint } = await serveAwsJson({
      targetPrefix: "AWSStepFunctions.",
      contentType: "application/x-amz-json-1.0",
      service: "StepFunctions",
      counts: this.counts,
      answer: (operation, raw, accessKeyId) => {
        const principal = jsonCaller(this.iam, accessKeyId);
        // SendTask* have no resource-level permissions: the token is the authorisation.
        if (principal) this.iam!.authorize({ principal, action: `states:${operation}`, resource: "*" });
        const input = raw as { taskToken?: string; output?: string; error?: string; cause?: string };
        const entry = input.taskToken ? this.waiting.get(input.taskToken) : undefined;
        if (!entry && !this.ended.has(input.taskToken ?? ""))
          throw new AwsApiError("InvalidToken", "Invalid token");
        // A task that timed out or already reported is closed: Step Functions answers TaskTimedOut.
        if (!entry || entry.report) throw new AwsApiError("TaskTimedOut", "Task Timed Out");
        if (operation === "SendTaskHeartbeat") {
          entry.lastHeartbeat = Date.now();
          entry.heartbeats++;
        } else if (operation === "SendTaskSuccess") {
          entry.report = { kind: "success", output: JSON.parse(input.output ?? "null") };
        } else if (operation === "SendTaskFailure") {
          entry.report = { kind: "failure", error: input.error ?? "TaskFailed", cause: input.cause ?? "" };
        } else {
          throw new AwsApiError("UnknownOperationException", operation);
        }
        entry.notify?.();
        return {};
      },
    }));
    return this.endpoint;
  }

  /** Starts waiting for reports on `token` (before the command that carries it is sent). */
  expect(token: string): void {
    this.waiting.set(token, { lastHeartbeat: Date.now(), heartbeats: 0 });
  }

  /**
   * The report for `token`, or undefined once `gaveUp` resolves first. Enforces the heartbeat
   * timeout as Step Functions does: no heartbeat for `heartbeatSeconds` ends the wait.
   */
  async wait(
    token: string,
    heartbeatSeconds: number | undefined,
    gaveUp: Promise<void>,
  ): Promise<TaskReport | { kind: "heartbeat-timeout" } | { kind: "gave-up" }> {
    const entry = this.waiting.get(token);
    if (!entry) throw new Error(`nothing expects task token ${token}`);
    try {
      for (;;) {
        if (entry.report) return entry.report;
        if (heartbeatSeconds && Date.now() - entry.lastHeartbeat > heartbeatSeconds * 1000) {
          return { kind: "heartbeat-timeout" };
        }
        const stopped = await Promise.race([
          new Promise<boolean>((resolve) => {
            entry.notify = () => resolve(false);
            setTimeout(() => resolve(false), 250);
          }),
          gaveUp.then(() => true),
        ]);
        if (stopped) {
          // The command ended; give a report already on its way a moment to arrive.
          await new Promise((resolve) => setTimeout(resolve, 500));
          return entry.report ?? { kind: "gave-up" };
        }
      }
    } finally {
      this.waiting.delete(token);
      this.ended.add(token);
    }
  }

  close(): void {
    this.server?.close();
  }
}
