import { SendTaskHeartbeatCommand, SFNClient } from "@aws-sdk/client-sfn";
import aslValidator from "asl-validator";
import { StateMachine } from "aws-local-stepfunctions";
import { beforeAll, describe, expect, it } from "vitest";
import { BackupInput, parseInput, RestoreInput } from "../../lambdas/lib/inputs.js";
import { describeOutcome, Outcome } from "../../lambdas/lib/notify.js";
import { selectSource } from "../../lambdas/lib/select-source.js";
import type { ClusterSettings } from "../../lambdas/lib/settings.js";
import type { HostStatus } from "../../lambdas/lib/source-policy.js";
import { TaskCallbacks } from "../../sandbox/aws/sfn-callbacks.js";
import { type AslDefinition, stateMachineDefinitions } from "../../sandbox/state-machine-definitions.js";
import { synthTemplate } from "./synth.js";

/** A stubbed task: its input, and its state as the template defines it (HeartbeatSeconds, …). */
type Handler = (input: Record<string, unknown>, state: { HeartbeatSeconds?: number }) => Promise<unknown>;

interface Outcome_ {
  readonly status: "SUCCEEDED" | "FAILED";
  readonly output?: Record<string, unknown>;
  readonly error?: string;
  readonly cause?: string;
  /** Each stubbed task's input, by state name, in call order. */
  readonly calls: Record<string, Record<string, unknown>[]>;
}

const TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAZ+task+token=";

let definitions: Record<string, AslDefinition>;

beforeAll(() => {
  definitions = stateMachineDefinitions(synthTemplate().toJSON() as never);
});

/** Runs a state machine from the template with its Tasks stubbed by state name and no waiting. */
async function run(name: string, input: unknown, handlers: Record<string, Handler>): Promise<Outcome_> {
  const definition = definitions[name]!;
  const calls: Record<string, Record<string, unknown>[]> = {};
  const recorded = Object.fromEntries(
    Object.keys(definition.States)
      .filter((state) => definition.States[state]!.Type === "Task")
      .map((state) => [
        state,
        async (taskInput: Record<string, unknown>) => {
          calls[state] = [...(calls[state] ?? []), taskInput];
          const handler = handlers[state];
          if (!handler) throw new Error(`state ${state} ran but the test gave it no stub`);
          return handler(taskInput, definition.States[state] as { HeartbeatSeconds?: number });
        },
      ]),
  );
  const retryIntervalOverrides = Object.fromEntries(
    Object.keys(definition.States).map((state) => [state, 0]),
  );
  const machine = new StateMachine(definition as never);
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: recorded as never, retryIntervalOverrides },
    context: {
      Execution: {
        Id: `arn:aws:states:us-east-1:123456789012:execution:${name}:test-execution`,
        Name: "test-execution",
        Input: input,
        StartTime: new Date().toISOString(),
      },
      Task: { Token: TOKEN },
    } as never,
  });
  try {
    const output = (await execution.result) as Record<string, unknown>;
    return { status: "SUCCEEDED", output, calls };
  } catch (error) {
    // The library wraps the Fail state's error (name = Error, message = Cause) in an ExecutionError.
    const failure = ((error as Error).cause ?? error) as Error;
    if (process.env.DEBUG_SFN) console.log(failure);
    return { status: "FAILED", error: failure.name, cause: failure.message, calls };
  }
}

/**
 * The sandbox's time in these tests: a second stands for this many of the template's, so a
 * heartbeat timeout of minutes is waited out in about a second.
 */
const TEMPLATE_SECONDS_PER_SECOND = 600;

/**
 * An agent task whose host goes silent: the task token waits in the sandbox's Step Functions
 * endpoint, the agent heartbeats once over the API, then stops; the state's own HeartbeatSeconds
 * from the template (compressed by TEMPLATE_SECONDS_PER_SECOND) ends the task as Step Functions does.
 */
async function silentAgent(
  _input: Record<string, unknown>,
  state: { HeartbeatSeconds?: number },
): Promise<never> {
  const heartbeatSeconds = state.HeartbeatSeconds;
  if (!heartbeatSeconds) throw new Error("the agent task has no HeartbeatSeconds in the template");
  const callbacks = new TaskCallbacks();
  const endpoint = await callbacks.listen();
  try {
    const token = `token-${Math.random()}`;
    callbacks.expect(token);
    const sfn = new SFNClient({
      region: "us-east-1",
      endpoint,
      credentials: { accessKeyId: "agent", secretAccessKey: "agent" },
    });
    await sfn.send(new SendTaskHeartbeatCommand({ taskToken: token }));
    const started = Date.now();
    const outcome = await callbacks.wait(
      token,
      heartbeatSeconds / TEMPLATE_SECONDS_PER_SECOND,
      new Promise(() => {}),
    );
    if (outcome.kind !== "heartbeat-timeout")
      throw new Error(`expected a heartbeat timeout, got ${outcome.kind}`);
    // Not before the template's timeout has passed (in the compressed time).
    if ((Date.now() - started) * TEMPLATE_SECONDS_PER_SECOND < heartbeatSeconds * 1000)
      throw new Error("the heartbeat timeout came early");
    return fail("States.HeartbeatTimeout", `no heartbeat from the agent for ${heartbeatSeconds} s`);
  } finally {
    callbacks.close();
  }
}

function fail(name: string, message: string): never {
  const error = new Error(message);
  error.name = name;
  throw error;
}

const orders: ClusterSettings = {
  name: "orders",
  engine: "mariadb",
  sourcePolicy: "prefer-replica",
  maxReplicaLagSeconds: 120,
};

const replica = (instanceId: string, lagSeconds: number): HostStatus => ({
  instanceId,
  status: {
    role: "replica",
    readOnly: true,
    binlogSource: `${instanceId}-src`,
    replication: {
      sourceHost: "10.0.1.10",
      sourcePort: 3306,
      sourceUser: "rewind_repl",
      ioRunning: true,
      sqlRunning: true,
      lagSeconds,
      lastError: null,
    },
  },
});
const primary: HostStatus = {
  instanceId: "i-0000000000000001a",
  status: { role: "primary", readOnly: false, binlogSource: "primary-src", replication: null },
};

/** select-source's real logic (input validation and policy) over a fake fleet. */
const selectFrom =
  (hosts: HostStatus[], cluster = orders): Handler =>
  async (input) =>
    selectSource(
      { instances: async () => hosts.map((host) => host.instanceId), status: async () => hosts },
      cluster,
      parseInput(BackupInput, input, "Backup"),
    );

const backupResult = { backupId: "20261121T031500Z-full-db2", storedBytes: 123456, seconds: 42 };
const notifications: ReturnType<typeof describeOutcome>[] = [];
const notify: Handler = async (input) => {
  notifications.push(describeOutcome(parseInput(Outcome, input, "notify")));
  return { notified: true };
};

const backupHandlers = (overrides: Record<string, Handler> = {}): Record<string, Handler> => ({
  SelectSource: selectFrom([primary, replica("i-0000000000000002b", 3), replica("i-0000000000000003c", 400)]),
  RunBackup: async () => backupResult,
  VerifyBackup: async (input) => ({ backupId: input.backupId, segments: 1, verified: true }),
  ApplyRetention: async () => ({ deletedObjects: 0, refused: null }),
  NotifySuccess: notify,
  NotifyFailure: notify,
  ...overrides,
});

describe("the state machines in the synthesized template", () => {
  it("are valid ASL in JSONPath, with a heartbeat, a timeout and a Catch on every agent task", () => {
    expect(Object.keys(definitions).sort()).toEqual([
      "Rewind-Backup",
      "Rewind-Restore",
      "Rewind-RestoreDrill",
    ]);
    for (const [name, definition] of Object.entries(definitions)) {
      const validation = aslValidator(definition);
      expect(validation.errorsText("\n"), name).toBe("");
      expect(validation.isValid).toBe(true);
      expect(definition.QueryLanguage ?? "JSONPath").toBe("JSONPath");
      const agentTasks = Object.entries(definition.States).filter(([, state]) =>
        state.Resource?.endsWith(":ssm:sendCommand.waitForTaskToken"),
      );
      expect(agentTasks.length, name).toBeGreaterThan(0);
      for (const [stateName, state] of agentTasks) {
        expect(state.HeartbeatSeconds, `${name}.${stateName}`).toBeGreaterThan(0);
        expect(state.TimeoutSeconds, `${name}.${stateName}`).toBeGreaterThan(state.HeartbeatSeconds!);
        expect(state.Parameters?.DocumentName).toBe("Rewind-RunAgent");
        expect((state.Parameters?.Parameters as Record<string, unknown> | undefined)?.["TaskToken.$"]).toBe(
          "States.Array($$.Task.Token)",
        );
      }
      for (const [stateName, state] of Object.entries(definition.States)) {
        if (state.Type !== "Task") continue;
        expect(state.Catch?.length, `${name}.${stateName} has no Catch`).toBeGreaterThan(0);
      }
    }
  });
});

describe("Backup", () => {
  it("backs up the healthiest replica, verifies and records success; retention is not on its path", async () => {
    const result = await run("Rewind-Backup", { cluster: "orders", type: "full" }, backupHandlers());
    expect(result.status).toBe("SUCCEEDED");
    const command = result.calls.RunBackup![0]!;
    expect(command).toMatchObject({
      DocumentName: "Rewind-RunAgent",
      InstanceIds: ["i-0000000000000002b"],
      // The cluster goes with the command: a host configured for another one refuses it.
      Parameters: { Command: ["backup"], Type: ["full"], TaskToken: [TOKEN], Cluster: ["orders"] },
    });
    expect(result.calls.VerifyBackup![0]).toEqual({ cluster: "orders", backupId: backupResult.backupId });
    // Retention runs on its own schedule: a slow or failing one never fails a good backup.
    expect(result.calls.ApplyRetention).toBeUndefined();
    expect(result.calls.NotifySuccess![0]).toMatchObject({
      stateMachine: "Backup",
      succeeded: true,
      detail: { backupId: backupResult.backupId, storedBytes: 123456 },
    });
  });

  it("fails with the agent's error name and cause when the backup fails on the host, and tells the operators", async () => {
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      backupHandlers({
        RunBackup: async () =>
          fail("BackupToolFailed", "mariabackup exited with 1: InnoDB: Operating system error 28"),
      }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("BackupToolFailed");
    expect(result.cause).toContain("Operating system error 28");
    expect(result.calls.VerifyBackup).toBeUndefined();
    expect(result.calls.NotifyFailure![0]).toMatchObject({
      stateMachine: "Backup",
      succeeded: false,
      error: { Error: "BackupToolFailed" },
    });
    expect(notifications.at(-1)!.subject).toContain("Backup of orders FAILED (BackupToolFailed)");
  });

  it("fails with States.HeartbeatTimeout when the agent stops reporting", async () => {
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      backupHandlers({ RunBackup: silentAgent }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("States.HeartbeatTimeout");
    // The template's own timeout, not a test's number.
    expect(result.cause).toBe(
      `no heartbeat from the agent for ${definitions["Rewind-Backup"]!.States.RunBackup!.HeartbeatSeconds} s`,
    );
    expect(result.calls.NotifyFailure).toHaveLength(1);
  });

  it("waits for a busy host and then backs up", async () => {
    let attempts = 0;
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      backupHandlers({
        RunBackup: async () =>
          ++attempts === 1 ? fail("AgentBusy", "a restore holds the lock") : backupResult,
      }),
    );
    expect(result.status).toBe("SUCCEEDED");
    expect(attempts).toBe(2);
  });

  it("sends the command again when SSM throttles SendCommand, and invokes a Lambda again when Lambda throttles", async () => {
    let sends = 0;
    let selects = 0;
    const handlers = backupHandlers();
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      {
        ...handlers,
        SelectSource: async (input, state) =>
          ++selects === 1
            ? fail("Lambda.TooManyRequestsException", "Rate Exceeded.")
            : handlers.SelectSource!(input, state),
        RunBackup: async () =>
          ++sends <= 3 ? fail("Ssm.ThrottlingException", "Rate exceeded") : backupResult,
      },
    );
    expect(result.status).toBe("SUCCEEDED");
    expect([selects, sends]).toEqual([2, 4]);
    // Every agent task and every Lambda step has these retries, with backoff and jitter.
    for (const [name, definition] of Object.entries(definitions)) {
      for (const [stateName, state] of Object.entries(definition.States)) {
        if (state.Type !== "Task") continue;
        const throttle = state.Resource?.endsWith(":ssm:sendCommand.waitForTaskToken")
          ? "Ssm.ThrottlingException"
          : "Lambda.TooManyRequestsException";
        const retry = (
          state as { Retry?: { ErrorEquals: string[]; JitterStrategy?: string; MaxAttempts?: number }[] }
        ).Retry?.find((r) => r.ErrorEquals.includes(throttle));
        expect(retry, `${name}.${stateName} retries ${throttle}`).toMatchObject({ JitterStrategy: "FULL" });
        expect(retry!.MaxAttempts).toBeGreaterThanOrEqual(6);
      }
    }
  });

  it("fails, and tells the operators, when verify finds a mismatch", async () => {
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      backupHandlers({
        VerifyBackup: async () => fail("VerifyFailed", "stream.000.enc: size 10 in S3, 12 in the manifest"),
      }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("VerifyFailed");
    expect(result.calls.NotifyFailure![0]).toMatchObject({
      succeeded: false,
      error: { Error: "VerifyFailed" },
    });
  });

  it("refuses bad input before any host is asked, naming the field", async () => {
    const result = await run("Rewind-Backup", { cluster: "Orders!", type: "full" }, backupHandlers());
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("InputInvalid");
    expect(result.cause).toContain("cluster:");
    expect(result.calls.RunBackup).toBeUndefined();
    const missing = await run("Rewind-Backup", {}, backupHandlers());
    expect(missing.error).toBe("InputInvalid");
  });

  it("fails with NoEligibleSource when policy replica finds only lagging replicas", async () => {
    const result = await run(
      "Rewind-Backup",
      { cluster: "orders", type: "full" },
      backupHandlers({
        SelectSource: selectFrom([primary, replica("i-0000000000000003c", 400)], {
          ...orders,
          sourcePolicy: "replica",
        }),
      }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("NoEligibleSource");
    expect(result.cause).toContain("400s behind (bound 120s)");
  });
});

const plannedFrom =
  (overrides: Record<string, unknown> = {}): Handler =>
  async (event) => {
    const input = parseInput(RestoreInput, event.input, "Restore");
    return {
      restoreId: event.restoreId,
      cluster: input.cluster,
      targetInstanceId: input.targetInstanceId,
      target: { kind: "time", time: "2026-11-21T10:15:00.000Z" },
      backupId: backupResult.backupId,
      binlogSource: "db2",
      binlogs: [{ source: "db2", file: "mariadb-bin.000042" }],
      planUri: `s3://rewind-backups/orders/restores/${event.restoreId}/plan.json`,
      mode: input.mode,
      datadir: input.datadir,
      promote: false,
      replicaOf: input.primary ?? "",
      dryRun: input.dryRun,
      ...overrides,
    };
  };

const restoreResult = { backupId: backupResult.backupId, gtidReached: "0-1-1042", seconds: 30 };
const restoreHandlers = (overrides: Record<string, Handler> = {}): Record<string, Handler> => ({
  PlanRestore: plannedFrom(),
  VerifyBackup: async (input) => ({ backupId: input.backupId, verified: true }),
  RunRestore: async () => restoreResult,
  HealthCheck: async () => ({ role: "primary", readOnly: false }),
  NotifySuccess: notify,
  NotifyFailure: notify,
  ...overrides,
});
const restoreInput = {
  cluster: "orders",
  targetInstanceId: "i-0abc1234def567890",
  pointInTime: "2026-11-21T10:15:00Z",
};

describe("Restore", () => {
  it("plans, verifies, restores on the target host with the plan, checks health and reports", async () => {
    const result = await run("Rewind-Restore", restoreInput, restoreHandlers());
    expect(result.status).toBe("SUCCEEDED");
    expect(result.calls.PlanRestore![0]).toEqual({ input: restoreInput, restoreId: "test-execution" });
    expect(result.calls.VerifyBackup![0]).toEqual({
      cluster: "orders",
      backupId: backupResult.backupId,
      binlogs: [{ source: "db2", file: "mariadb-bin.000042" }],
    });
    expect(result.calls.RunRestore![0]).toMatchObject({
      InstanceIds: ["i-0abc1234def567890"],
      // The plan alone says how to restore: the agent reads mode and datadir from it.
      Parameters: {
        Command: ["restore"],
        Plan: ["s3://rewind-backups/orders/restores/test-execution/plan.json"],
        TaskToken: [TOKEN],
        Cluster: ["orders"],
      },
    });
    expect(Object.keys(result.calls.RunRestore![0]!.Parameters as object).sort()).toEqual([
      "Cluster",
      "Command",
      "Plan",
      "TaskToken",
    ]);
    expect(result.calls.HealthCheck![0]).toMatchObject({ Parameters: { Command: ["status"] } });
    expect(result.calls.NotifySuccess![0]).toMatchObject({
      stateMachine: "Restore",
      detail: { restore: restoreResult },
    });
  });

  it("returns the plan and touches no host on a dry run", async () => {
    const result = await run("Rewind-Restore", { ...restoreInput, dryRun: true }, restoreHandlers());
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output).toMatchObject({ backupId: backupResult.backupId, dryRun: true });
    expect(result.calls.VerifyBackup).toBeUndefined();
    expect(result.calls.RunRestore).toBeUndefined();
  });

  it("refuses an input with two targets, saying which", async () => {
    const result = await run("Rewind-Restore", { ...restoreInput, gtid: "0-1-5" }, restoreHandlers());
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("InputInvalid");
    expect(result.cause).toContain(
      "give exactly one of pointInTime, gtid, backupId or latest (got pointInTime, gtid)",
    );
  });

  it("passes on the planner's refusal of a target past a gap", async () => {
    const result = await run(
      "Rewind-Restore",
      restoreInput,
      restoreHandlers({
        PlanRestore: async () =>
          fail(
            "RestorePlanRefused",
            "the target time lies past a gap in the binlog chain after mariadb-bin.000041",
          ),
      }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("RestorePlanRefused");
    expect(result.cause).toContain("mariadb-bin.000041");
    expect(result.calls.RunRestore).toBeUndefined();
  });

  it("never reaches the host when verify fails", async () => {
    const result = await run(
      "Rewind-Restore",
      restoreInput,
      restoreHandlers({
        VerifyBackup: async () => fail("VerifyFailed", "mariadb-bin.000042: its manifest is missing"),
      }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("VerifyFailed");
    expect(result.calls.RunRestore).toBeUndefined();
  });

  it("fails with States.HeartbeatTimeout when the host goes silent mid-restore", async () => {
    const result = await run("Rewind-Restore", restoreInput, restoreHandlers({ RunRestore: silentAgent }));
    expect(result.error).toBe("States.HeartbeatTimeout");
    expect(result.calls.HealthCheck).toBeUndefined();
  });

  it("fails with ReplicationNotRunning when a replica-mode restore does not replicate", async () => {
    const input = { ...restoreInput, mode: "replica", primary: "10.0.1.12:3306" };
    const result = await run("Rewind-Restore", input, restoreHandlers());
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("ReplicationNotRunning");
    const healthy = await run(
      "Rewind-Restore",
      input,
      restoreHandlers({ HealthCheck: async () => ({ role: "replica", readOnly: true }) }),
    );
    expect(healthy.status).toBe("SUCCEEDED");
  });

  it("skips the health check of a scratch restore", async () => {
    const result = await run(
      "Rewind-Restore",
      { ...restoreInput, mode: "scratch", datadir: "/var/tmp/rewind/try" },
      restoreHandlers(),
    );
    expect(result.status).toBe("SUCCEEDED");
    expect(result.calls.HealthCheck).toBeUndefined();
  });
});

describe("RestoreDrill", () => {
  const drillHandlers = (overrides: Record<string, Handler> = {}): Record<string, Handler> => ({
    SelectDrillHost: selectFrom([primary, replica("i-0000000000000002b", 3)]),
    PlanDrill: plannedFrom(),
    VerifyDrill: async () => ({ verified: true }),
    RunDrill: async () => restoreResult,
    NotifySuccess: notify,
    NotifyFailure: notify,
    ...overrides,
  });

  it("restores the latest point into a scratch datadir on the chosen host and records DrillSucceeded", async () => {
    const result = await run("Rewind-RestoreDrill", { cluster: "orders" }, drillHandlers());
    expect(result.status).toBe("SUCCEEDED");
    expect(result.calls.PlanDrill![0]).toEqual({
      input: {
        cluster: "orders",
        targetInstanceId: "i-0000000000000002b",
        latest: true,
        mode: "scratch",
        datadir: "/var/tmp/rewind/drill",
      },
      restoreId: "test-execution",
    });
    expect(result.calls.RunDrill![0]).toMatchObject({
      Parameters: { Command: ["restore"], Plan: [expect.stringMatching(/plan\.json$/)] },
    });
    expect(result.calls.NotifySuccess![0]).toMatchObject({ stateMachine: "RestoreDrill", succeeded: true });
  });

  it("fails and reports a drill whose restore fails", async () => {
    const result = await run(
      "Rewind-RestoreDrill",
      { cluster: "orders" },
      drillHandlers({ RunDrill: async () => fail("BinlogReplayFailed", "replay stopped at 0-1-1000") }),
    );
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("BinlogReplayFailed");
    expect(result.calls.NotifyFailure![0]).toMatchObject({ stateMachine: "RestoreDrill", succeeded: false });
  });
});
