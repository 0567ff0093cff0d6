import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  type SFNClient,
} from "@aws-sdk/client-sfn";
import { log } from "./log.js";

/** The environment variable that carries the task token from Rewind-RunAgent to the agent. */
export const TASK_TOKEN_VARIABLE = "REWIND_TASK_TOKEN";

/**
 * Reports to the Step Functions task that started this command (`--task-token`): heartbeats
 * while work goes on, then success with the result or failure with an error name and a cause.
 */
export class TaskReporter {
  private lastBeat = 0;
  private beating?: Promise<void>;

  constructor(
    private readonly client: SFNClient,
    private readonly taskToken: string,
    private readonly intervalMs: number,
  ) {}

  /** Cheap to call often: sends at most one heartbeat per interval. */
  heartbeat(): void {
    const now = Date.now();
    if (this.beating || now - this.lastBeat < this.intervalMs) return;
    this.lastBeat = now;
    this.beating = this.client
      .send(new SendTaskHeartbeatCommand({ taskToken: this.taskToken }))
      .then(
        () => undefined,
        (error: Error) => log("warn", "task heartbeat failed", { error: error.message }),
      )
      .finally(() => {
        this.beating = undefined;
      });
  }

  /** Heartbeats on a timer too, for stretches where no progress is reported. */
  keepAlive(): () => void {
    const timer = setInterval(() => this.heartbeat(), Math.min(this.intervalMs, 30_000));
    timer.unref();
    return () => clearInterval(timer);
  }

  async succeed(output: unknown): Promise<void> {
    await this.client.send(
      new SendTaskSuccessCommand({ taskToken: this.taskToken, output: JSON.stringify(output) }),
    );
  }

  /** Step Functions limits: error 256 characters, cause 32,768. */
  async fail(error: string, cause: string): Promise<void> {
    await this.client.send(
      new SendTaskFailureCommand({
        taskToken: this.taskToken,
        error: error.slice(0, 256),
        cause: cause.slice(0, 32_768),
      }),
    );
  }
}
