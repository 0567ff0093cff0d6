import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from "@aws-sdk/client-sfn";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { TaskReporter } from "../../host-agent/task-reporter.js";

const sfn = mockClient(SFNClient);

describe("task token reporting", () => {
  beforeEach(() => sfn.reset());

  it("sends at most one heartbeat per interval however often progress is reported", async () => {
    sfn.on(SendTaskHeartbeatCommand).resolves({});
    const reporter = new TaskReporter(new SFNClient({ region: "us-east-1" }), "token-1", 60_000);
    for (let i = 0; i < 100; i++) reporter.heartbeat();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sfn.commandCalls(SendTaskHeartbeatCommand).map((call) => call.args[0].input)).toEqual([
      { taskToken: "token-1" },
    ]);
  });

  it("sends the result as JSON on success", async () => {
    sfn.on(SendTaskSuccessCommand).resolves({});
    await new TaskReporter(new SFNClient({ region: "us-east-1" }), "token-2", 1000).succeed({
      backupId: "b1",
    });
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]!.args[0].input).toEqual({
      taskToken: "token-2",
      output: '{"backupId":"b1"}',
    });
  });

  it("sends the error name and a cause within Step Functions' limits", async () => {
    sfn.on(SendTaskFailureCommand).resolves({});
    const cause = `the backup failed in stage "zstd": ${"x".repeat(40_000)}`;
    await new TaskReporter(new SFNClient({ region: "us-east-1" }), "token-3", 1000).fail(
      "CompressionFailed",
      cause,
    );
    const input = sfn.commandCalls(SendTaskFailureCommand)[0]!.args[0].input;
    expect(input.taskToken).toBe("token-3");
    expect(input.error).toBe("CompressionFailed");
    expect(input.cause).toHaveLength(32_768);
    expect(input.cause).toMatch(/^the backup failed in stage "zstd"/);
  });
});
