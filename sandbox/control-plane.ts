import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { StateMachine } from "aws-local-stepfunctions";
import { DEFAULT_DEPLOYMENT, deploymentNames } from "../core/contracts/deployment.js";
import { SETTINGS_ENV } from "../core/contracts/lambda-settings.js";
import { describeOutcome, Outcome, readableCause } from "../lambdas/lib/notify.js";
import { AccessDenied, deploymentPrefix, type IamPrincipal, SandboxIam } from "./aws/iam.js";
import { LocalLambda } from "./aws/lambda.js";
import { RequestCounts } from "./aws/request-counts.js";
import { TaskCallbacks } from "./aws/sfn-callbacks.js";
import { type AgentDocumentContent, LocalSsm, type SandboxHost, SsmRequestError } from "./aws/ssm.js";
import { type AgentOutput, agentOutputOf } from "./hosts/agent.js";
import {
  type AslDefinition,
  type AslState,
  type NameOverrides,
  resolveIntrinsics,
  stateMachineDefinitions,
  type Template,
} from "./state-machine-definitions.js";

/** What the sandbox synthesized: the template, and which Lambda (by logical id) is which handler. */
export interface SynthesizedControlPlane {
  readonly template: Template;
  /** Lambda logical id → handler folder under lambdas/ (`select-source`, …). */
  readonly functions: Readonly<Record<string, string>>;
  readonly bucketLogicalId: string;
  /** The KMS key backups are encrypted under. */
  readonly keyLogicalId: string;
}

export interface ExecutionResult {
  readonly name: string;
  readonly executionName: string;
  readonly status: "SUCCEEDED" | "FAILED";
  readonly output?: Record<string, unknown>;
  readonly error?: string;
  readonly cause?: string;
  /** Every Task state run, in order, with what it returned or threw. */
  readonly steps: { state: string; ok: boolean; detail?: string }[];
}

type Handler = (event: unknown) => Promise<unknown>;

/** A named error, as Step Functions matches and shows it. */
function taskError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * The deployed control plane, run on this machine (DESIGN §5, local sandbox): the state machines
 * exactly as synthesized, under aws-local-stepfunctions; every Lambda Task mapped to the real
 * handler (its environment taken from the template, clients pointed at the sandbox's S3 and SSM
 * stand-ins); every agent Task sent through the real Rewind-RunAgent document to a sandbox host,
 * whose agent reports to a local Step Functions endpoint standing in for the task token.
 */
export class LocalControlPlane {
  readonly definitions: Record<string, AslDefinition>;
  readonly ssm: LocalSsm;
  readonly iam: SandboxIam;
  readonly counts: RequestCounts;
  private readonly callbacks: TaskCallbacks;
  private lambdas: Record<string, LocalLambda> = {};
  private readonly names: NameOverrides;

  constructor(
    private readonly synthesized: SynthesizedControlPlane,
    private readonly sandbox: {
      readonly bucket: string;
      readonly s3Endpoint: string;
      readonly hosts: readonly SandboxHost[];
      readonly agentBundle: string;
      /** Prints progress; silent by default. */
      readonly log?: (line: string) => void;
      /** IAM from the template; without it, the stand-ins allow every request. */
      readonly iam?: SandboxIam;
      readonly counts?: RequestCounts;
      /** The Secrets Manager stand-in, for the rotation function. */
      readonly secretsEndpoint?: string;
      /**
       * Another deployment than the default (two side by side): its principals are named
       * `<deployment>: …` in the shared IAM model, and only its own hosts (those with its tag)
       * report to this control plane.
       */
      readonly deployment?: string;
    },
  ) {
    this.names = { [synthesized.bucketLogicalId]: sandbox.bucket };
    this.definitions = stateMachineDefinitions(synthesized.template);
    this.iam = sandbox.iam ?? new SandboxIam(undefined);
    this.counts = sandbox.counts ?? new RequestCounts();
    this.callbacks = new TaskCallbacks(this.iam, this.counts);
    this.ssm = new LocalSsm(
      agentDocuments(synthesized.template),
      sandbox.hosts,
      sandbox.agentBundle,
      { AWS_SSM_REGION_NAME: "us-east-1", AWS_EC2_METADATA_DISABLED: "true" },
      { iam: this.iam, counts: this.counts },
    );
    // The template's SSM parameters (each cluster's settings), as a deploy creates them.
    for (const resource of Object.values(synthesized.template.Resources)) {
      if (resource.Type !== "AWS::SSM::Parameter") continue;
      const { Name, Value } = resource.Properties as { Name: string; Value: string };
      this.ssm.parameters.set(Name, Value);
    }
  }

  /** The principal a template role stands for (`state machine Rewind-Backup`, …), when IAM is on. */
  private principal(name: string): IamPrincipal | undefined {
    return this.iam.enforcing
      ? this.iam.principalNamed(`${deploymentPrefix(this.sandbox.deployment ?? DEFAULT_DEPLOYMENT)}${name}`)
      : undefined;
  }

  /** Throws a Step Functions-style error when IAM refuses `caller` the call. */
  private authorize(
    caller: IamPrincipal | undefined,
    action: string,
    resource: string,
    errorName: string,
  ): void {
    if (!caller) return;
    try {
      this.iam.authorize({ principal: caller, action, resource });
    } catch (error) {
      if (error instanceof AccessDenied) throw taskError(errorName, error.message);
      throw error;
    }
  }

  /** Starts the SSM and Step Functions stand-ins, points the hosts' agents at them, readies the Lambdas. */
  async start(): Promise<void> {
    await this.ssm.listen();
    await this.callbacks.listen();
    const hostTag = deploymentNames(this.sandbox.deployment).hostTag;
    for (const host of this.sandbox.hosts) {
      if (host.tags[hostTag] === undefined) continue;
      const config = JSON.parse(readFileSync(host.configFile, "utf8"));
      writeFileSync(
        host.configFile,
        JSON.stringify({ ...config, sfnEndpoint: this.callbacks.endpoint, heartbeatSeconds: 5 }, null, 2),
        { mode: 0o600 },
      );
    }
    const template = this.synthesized.template;
    for (const [id, folder] of Object.entries(this.synthesized.functions)) {
      const fn = template.Resources[id];
      if (!fn) throw new Error(`the sandbox knows a Lambda ${id} (${folder}) that the template lacks`);
      const variables = resolveIntrinsics(
        (fn.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
        template,
        this.names,
      ) as Record<string, string>;
      // No SNS here: the sandbox prints each outcome message instead of publishing it.
      const { [SETTINGS_ENV.topicArn]: _topic, ...environment } = variables;
      const role = this.principal(`Lambda ${folder}`);
      this.lambdas[id] = new LocalLambda(
        folder,
        folder,
        {
          ...environment,
          AWS_REGION: "us-east-1",
          AWS_EC2_METADATA_DISABLED: "true",
          AWS_LAMBDA_FUNCTION_NAME: String(fn.Properties?.FunctionName ?? id),
          AWS_ACCESS_KEY_ID: role?.accessKeyId ?? "sandbox",
          AWS_SECRET_ACCESS_KEY: role?.secretAccessKey ?? "sandbox",
          REWIND_S3_ENDPOINT: this.sandbox.s3Endpoint,
          REWIND_SSM_ENDPOINT: this.ssm.endpoint,
          ...(this.sandbox.secretsEndpoint ? { REWIND_SECRETS_ENDPOINT: this.sandbox.secretsEndpoint } : {}),
          POWERTOOLS_METRICS_DISABLED: "true",
          POWERTOOLS_LOG_LEVEL: "ERROR",
        },
        this.counts,
      );
    }
  }

  /** Invokes a Lambda of the template by its folder (`rotate-accounts`), as a service would. */
  async invokeFunction(folder: string, event: unknown): Promise<unknown> {
    const entry = Object.entries(this.synthesized.functions).find(([, each]) => each === folder);
    const lambda = entry ? this.lambdas[entry[0]] : undefined;
    if (!lambda) throw new Error(`no Lambda ${folder} in the template`);
    return lambda.invoke(event);
  }

  stop(): void {
    this.ssm.close();
    this.callbacks.close();
    for (const lambda of Object.values(this.lambdas)) lambda.stop();
  }

  /** Runs a state machine (`Rewind-Backup`, …) to its end, as StartExecution would. */
  async startExecution(name: string, input: unknown): Promise<ExecutionResult> {
    const definition = this.definitions[name];
    if (!definition)
      throw new Error(
        `no state machine ${name}; the template has ${Object.keys(this.definitions).join(", ")}`,
      );
    const executionName = `sandbox-${new Date().toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
    const token = randomBytes(48).toString("base64url");
    const steps: ExecutionResult["steps"] = [];
    const role = this.principal(`state machine ${name}`);
    const taskHandlers = Object.fromEntries(
      Object.entries(definition.States)
        .filter(([, state]) => state.Type === "Task")
        .map(([stateName, state]) => [stateName, this.taskHandler(stateName, state, steps, role)]),
    );
    this.counts.add("StepFunctions", "StartExecution");
    const machine = new StateMachine(definition as never);
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: taskHandlers as never,
        retryIntervalOverrides: Object.fromEntries(
          Object.keys(definition.States).map((state) => [state, 1000]),
        ),
      },
      context: {
        Execution: {
          Id: `arn:aws:states:us-east-1:123456789012:execution:${name}:${executionName}`,
          Name: executionName,
          Input: input,
          StartTime: new Date().toISOString(),
        },
        StateMachine: { Id: `arn:aws:states:us-east-1:123456789012:stateMachine:${name}`, Name: name },
        Task: { Token: token },
      } as never,
    });
    try {
      const output = (await execution.result) as Record<string, unknown>;
      return { name, executionName, status: "SUCCEEDED", output, steps };
    } catch (error) {
      const failure = ((error as Error).cause ?? error) as Error;
      return { name, executionName, status: "FAILED", error: failure.name, cause: failure.message, steps };
    }
  }

  private taskHandler(
    stateName: string,
    state: AslState,
    steps: ExecutionResult["steps"],
    role: IamPrincipal | undefined,
  ): Handler {
    const resource = state.Resource ?? "";
    const log = this.sandbox.log ?? (() => {});
    const record = async (run: () => Promise<unknown>): Promise<unknown> => {
      log(`  · ${stateName}`);
      // Entering a state and leaving it: what Standard workflows bill.
      this.counts.add("StepFunctions", "StateTransition", 2);
      try {
        const result = await run();
        steps.push({ state: stateName, ok: true });
        return result;
      } catch (error) {
        const failure = error as Error;
        steps.push({ state: stateName, ok: false, detail: `${failure.name}: ${failure.message}` });
        log(`    ✘ ${failure.name}: ${failure.message.split("\n")[0]}`);
        throw error;
      }
    };
    if (resource.startsWith("arn:aws:lambda:")) {
      const logicalId = resource.split(":").at(-1)!;
      const lambda = this.lambdas[logicalId];
      if (!lambda) throw new Error(`state ${stateName} invokes ${logicalId}, which is not a Rewind Lambda`);
      return (event) =>
        record(async () => {
          this.authorize(role, "lambda:InvokeFunction", resource, "Lambda.AWSLambdaException");
          const result = await lambda.invoke(event);
          if (stateName === "NotifySuccess" || stateName === "NotifyFailure") {
            const outcome = Outcome.parse(event);
            log(`    ✉ ${describeOutcome(outcome).subject}`);
            if (!outcome.succeeded) log(`      ${readableCause(outcome.error?.Cause).split("\n")[0]}`);
          }
          return result;
        });
    }
    if (resource.endsWith(":ssm:sendCommand.waitForTaskToken")) {
      return (event) => record(() => this.agentTask(event as AgentTaskInput, state.HeartbeatSeconds, role));
    }
    throw new Error(`state ${stateName} calls ${resource}, which the sandbox cannot run`);
  }

  /** ssm:sendCommand.waitForTaskToken: the agent's own report is the task's result. */
  private async agentTask(
    input: AgentTaskInput,
    heartbeatSeconds: number | undefined,
    role: IamPrincipal | undefined,
  ): Promise<unknown> {
    const token = input.Parameters?.TaskToken?.[0];
    if (!token) throw taskError("States.Runtime", "the agent task passes no TaskToken parameter");
    let sent: ReturnType<LocalSsm["sendCommand"]>;
    this.callbacks.expect(token);
    try {
      sent = this.ssm.sendCommand(input, role);
    } catch (error) {
      if (error instanceof AccessDenied) throw taskError("Ssm.AccessDeniedException", error.message);
      if (error instanceof SsmRequestError) {
        const [type, ...rest] = error.message.split(": ");
        // Step Functions names it <Service>.<Error>, with the Exception suffix always there.
        throw taskError(`Ssm.${type!.endsWith("Exception") ? type : `${type}Exception`}`, rest.join(": "));
      }
      throw error;
    }
    const invocation = sent.invocations[0]!;
    const report = await this.callbacks.wait(token, heartbeatSeconds, invocation.done);
    switch (report.kind) {
      case "success":
        return report.output;
      case "failure":
        throw taskError(report.error, report.cause);
      case "heartbeat-timeout":
        throw taskError(
          "States.HeartbeatTimeout",
          `no heartbeat from the agent on ${invocation.instanceId} for ${heartbeatSeconds} s`,
        );
      case "gave-up":
        throw taskError(
          "States.HeartbeatTimeout",
          `the agent on ${invocation.instanceId} exited with ${invocation.exitCode} without reporting to Step Functions: ${invocation.stderr.trim().split("\n").slice(-3).join(" | ")}`,
        );
    }
  }

  /** Fires a schedule (`rewind-full-orders`, …) once, with the target and input the template gives it. */
  async fireSchedule(
    name: string,
  ): Promise<ExecutionResult | ScheduledCommandResult | ScheduledInvocationResult> {
    const schedule = Object.values(this.synthesized.template.Resources).find(
      (resource) => resource.Type === "AWS::Scheduler::Schedule" && resource.Properties?.Name === name,
    );
    if (!schedule) throw new Error(`no schedule ${name} in the template`);
    const target = resolveIntrinsics(schedule.Properties!.Target, this.synthesized.template, this.names) as {
      Arn: string;
      Input: string;
    };
    const input = JSON.parse(target.Input);
    const scheduler = this.principal("EventBridge Scheduler");
    this.counts.add("Scheduler", "Invocation");
    const machine = /:stateMachine:(.+)$/.exec(target.Arn)?.[1];
    if (machine) {
      this.authorize(scheduler, "states:StartExecution", target.Arn, "Scheduler.TargetError");
      const resource = this.synthesized.template.Resources[machine];
      return this.startExecution(String(resource?.Properties?.StateMachineName ?? machine), input);
    }
    if (target.Arn.endsWith(":aws-sdk:ssm:sendCommand")) {
      let sent: ReturnType<LocalSsm["sendCommand"]>;
      try {
        sent = this.ssm.sendCommand(input, scheduler);
      } catch (error) {
        if (error instanceof AccessDenied) throw taskError("Scheduler.TargetError", error.message);
        throw error;
      }
      const { commandId, invocations } = sent;
      await Promise.all(invocations.map((invocation) => invocation.done));
      return {
        commandId,
        hosts: invocations.map((invocation) => {
          const result = agentOutputOf(invocation.stdout);
          return {
            instanceId: invocation.instanceId,
            status: invocation.status,
            result,
            stderr: invocation.stderr,
          };
        }),
      };
    }
    const fn = /^arn:aws:lambda:[^:]+:[^:]+:function:(.+)$/.exec(target.Arn)?.[1];
    if (fn) {
      // Scheduler's Lambda target, as its role may: the function's own role then does the work.
      this.authorize(scheduler, "lambda:InvokeFunction", target.Arn, "Scheduler.TargetError");
      const lambda = this.lambdas[fn];
      if (!lambda) throw new Error(`schedule ${name} invokes ${fn}, which is not a Rewind Lambda`);
      this.counts.add("Lambda", "Invoke");
      try {
        return { function: fn, ok: true, result: await lambda.invoke(input) };
      } catch (error) {
        return { function: fn, ok: false, error: `${(error as Error).name}: ${(error as Error).message}` };
      }
    }
    throw new Error(`schedule ${name} targets ${target.Arn}, which the sandbox cannot run`);
  }
}

/** A schedule that invokes a Lambda (retention): what the function returned, or its error. */
export interface ScheduledInvocationResult {
  readonly function: string;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

export interface ScheduledCommandResult {
  readonly commandId: string;
  readonly hosts: {
    instanceId: string;
    status: string;
    /** The result line, parsed with core's schema (AgentResultLine). */
    result?: AgentOutput;
    stderr: string;
  }[];
}

interface AgentTaskInput {
  DocumentName?: string;
  InstanceIds?: string[];
  Parameters?: Record<string, string[]>;
}

/** The Rewind-RunAgent document as synthesized: its parameters and its shell step. */
export function agentDocument(template: Template): AgentDocumentContent {
  const documents = agentDocuments(template);
  const found = documents.find((document) => document.destinationPath !== null);
  if (!found) throw new Error("the template has no SSM document that downloads the agent");
  return found;
}

/** Every SSM document of the template, as the sandbox's SSM runs them. */
export function agentDocuments(template: Template): AgentDocumentContent[] {
  const found = Object.values(template.Resources).filter(
    (resource) => resource.Type === "AWS::SSM::Document",
  );
  if (found.length === 0) throw new Error("the template has no SSM document");
  return found.map((resource) => {
    const properties = resolveIntrinsics(resource.Properties, template) as {
      Name: string;
      Content: {
        parameters: AgentDocumentContent["parameters"];
        mainSteps: {
          action: string;
          name: string;
          inputs: { runCommand?: string[]; destinationPath?: string; sourceInfo?: string };
        }[];
      };
    };
    const steps = properties.Content.mainSteps;
    const shell = steps.find((step) => step.action === "aws:runShellScript");
    const download = steps.find((step) => step.action === "aws:downloadContent");
    const runCommand = shell?.inputs.runCommand ?? [];
    const agentLine = runCommand.find((line) => line.startsWith("agent="));
    const configLine = runCommand.find((line) => line.includes("--config "));
    if (!agentLine || !configLine || !shell || (download && !download.inputs.destinationPath))
      throw new Error(`${properties.Name} does not name the agent and its config in its shell step`);
    const source = JSON.parse(download?.inputs.sourceInfo ?? "{}") as { path?: string };
    return {
      name: properties.Name,
      parameters: properties.Content.parameters,
      runCommand,
      downloadDir: agentLine.slice("agent=".length, agentLine.lastIndexOf("/")),
      configPath: /--config (\S+)/.exec(configLine)![1]!,
      destinationPath: download?.inputs.destinationPath ?? null,
      downloadedName: path.posix.basename(source.path ?? "rewind-agent.mjs"),
      stepNames: steps.map((step) => step.name),
      shellStep: shell.name,
    };
  });
}
