import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import type http from "node:http";
import path from "node:path";
import { MINIMUM_SSM_AGENT } from "../../core/contracts/agent-document.js";
import { track } from "../processes.js";
import type { IamPrincipal, SandboxIam } from "./iam.js";
import { AwsApiError, jsonCaller, serveAwsJson } from "./json-endpoint.js";
import type { RequestCounts } from "./request-counts.js";

/** The parts of the Rewind-RunAgent document the runner needs, as synthesized. */
export interface AgentDocumentContent {
  readonly name: string;
  readonly parameters: Record<string, { default?: string; allowedPattern?: string }>;
  /** The `aws:runShellScript` step's lines. */
  readonly runCommand: readonly string[];
  /** The directory the shell step runs the agent from, and the config path it names. */
  readonly downloadDir: string;
  readonly configPath: string;
  /**
   * `aws:downloadContent`'s destinationPath, and the name of the object it downloads; null for a
   * document that runs what is installed on the host (Rewind-RunInstalledAgent).
   */
  readonly destinationPath: string | null;
  readonly downloadedName: string;
  /** Every step's name, in order, and the shell step's. */
  readonly stepNames: readonly string[];
  readonly shellStep: string;
}

/** A sandbox "managed instance": a database host on this machine. */
export interface SandboxHost {
  readonly instanceId: string;
  readonly name: string;
  readonly tags: Readonly<Record<string, string>>;
  /** The agent config this host's /etc/rewind/agent.json stands for. */
  readonly configFile: string;
  /** A directory of the host's own, for the downloaded agent. */
  readonly dir: string;
  /**
   * What the host's processes find in their environment: its instance role's credentials (as
   * the instance metadata service would hand them out) and the stand-ins' endpoints.
   */
  readonly environment?: Readonly<Record<string, string>>;
}

export interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  /** The document it runs. */
  readonly document: AgentDocumentContent;
  status: "InProgress" | "Success" | "Failed" | "Undeliverable";
  exitCode: number | null;
  stdout: string;
  stderr: string;
  readonly done: Promise<void>;
  /** Whether the output reached CloudWatch Logs, when the command asked for it. */
  cloudWatchOutput?: "pending" | "delivered" | "denied";
}

export class SsmRequestError extends Error {}

/**
 * `aws:downloadContent` from S3 as the SSM Agent does it: into `destination` when it ends with a
 * slash or is an existing directory, otherwise saved as the file `destination` itself.
 */
export function downloadContent(source: string, destination: string, objectName: string): string {
  const intoDirectory =
    destination.endsWith("/") || (existsSync(destination) && statSync(destination).isDirectory());
  const file = intoDirectory ? path.join(destination, objectName) : destination;
  mkdirSync(path.dirname(file), { recursive: true });
  // As the SSM Agent does (agent/plugins/downloadcontent/s3resource/s3resource.go: the artifact is
  // downloaded into the destination directory, then renamed onto the destination name): a command
  // already running the file keeps reading a whole one while another command downloads it again.
  const partial = `${file}.download-${process.pid}-${Math.random().toString(36).slice(2)}`;
  copyFileSync(source, partial);
  renameSync(partial, file);
  return file;
}

const OUTPUT_LIMIT = 24_000;

/**
 * The Systems Manager side of the sandbox: `SendCommand` of the real Rewind-RunAgent document to
 * sandbox hosts, running the document's own shell step (parameters checked against their
 * allowedPattern and passed as SSM_* environment variables, as SSM does) with the real agent
 * bundle. The HTTP endpoint speaks enough of the SSM API (JSON 1.1) for the select-source Lambda:
 * DescribeInstanceInformation, SendCommand, GetCommandInvocation.
 */
export class LocalSsm {
  private readonly invocations = new Map<string, Invocation>();
  private server?: http.Server;
  endpoint = "";

  private readonly documents: readonly AgentDocumentContent[];

  constructor(
    documents: AgentDocumentContent | readonly AgentDocumentContent[],
    private readonly hosts: readonly SandboxHost[],
    private readonly agentBundle: string,
    private readonly env: NodeJS.ProcessEnv = {},
    private readonly access: { readonly iam?: SandboxIam; readonly counts?: RequestCounts } = {},
  ) {
    this.documents = Array.isArray(documents) ? documents : [documents as AgentDocumentContent];
  }

  /** Throws AccessDenied unless `caller` may do `action` on `resource` (no IAM: allowed). */
  private authorize(
    caller: IamPrincipal | undefined,
    action: string,
    resource: string,
    context?: Record<string, string>,
  ): void {
    if (caller && this.access.iam?.enforcing)
      this.access.iam.authorize({ principal: caller, action, resource, ...(context ? { context } : {}) });
  }

  private readonly faults: { instanceId: string; match: (env: Record<string, string>) => boolean }[] = [];

  private bucket: { perSecond: number; burst: number; tokens: number; at: number } | undefined;

  /** Parameter Store: name → value (String parameters, as the template makes them). */
  readonly parameters = new Map<string, string>();
  /** SendCommand requests refused with ThrottlingException so far. */
  throttled = 0;

  /**
   * SSM throttles its API per account and Region and refuses the excess with ThrottlingException
   * ("the service is throttling requests", SSM API Reference); the rates are account quotas
   * (Service Quotas), not published constants, so a test sets the stand-in's: SendCommand through
   * a token bucket of `burst` requests refilled at `perSecond`. Undefined: no limit.
   */
  throttleSendCommand(rate: { perSecond: number; burst: number } | undefined): void {
    this.bucket = rate ? { ...rate, tokens: rate.burst, at: Date.now() } : undefined;
  }

  private takeSendToken(): void {
    const bucket = this.bucket;
    if (!bucket) return;
    const now = Date.now();
    bucket.tokens = Math.min(bucket.burst, bucket.tokens + ((now - bucket.at) / 1000) * bucket.perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) {
      this.throttled += 1;
      throw new SsmRequestError("ThrottlingException: Rate exceeded");
    }
    bucket.tokens -= 1;
  }

  /**
   * A fault a test cannot cause for real here: the next command to `instanceId` whose parameters
   * match never reaches the host (the instance went offline), and ends Undeliverable.
   */
  failNext(instanceId: string, match: (parameters: Record<string, string>) => boolean): void {
    this.faults.push({ instanceId, match });
  }

  /** Instances matching SSM's tag filters (`tag:<key>`) and targets. */
  instancesTagged(key: string, values: readonly string[]): SandboxHost[] {
    return this.hosts.filter((host) => values.includes(host.tags[key] ?? ""));
  }

  /** `SendCommand`: validates like SSM, starts the document on each host, returns the command id. */
  sendCommand(
    request: {
      DocumentName?: string;
      InstanceIds?: string[];
      Targets?: { Key: string; Values: string[] }[];
      Parameters?: Record<string, string[]>;
      CloudWatchOutputConfig?: { CloudWatchOutputEnabled?: boolean; CloudWatchLogGroupName?: string };
    },
    /** Who sends it; SendCommand is authorised on the document and on every instance. */
    caller?: IamPrincipal,
  ): { commandId: string; invocations: Invocation[] } {
    this.access.counts?.add("SSM", "SendCommand");
    this.takeSendToken();
    this.authorize(
      caller,
      "ssm:SendCommand",
      `arn:aws:ssm:us-east-1:123456789012:document/${request.DocumentName}`,
    );
    const document = this.documents.find((each) => each.name === request.DocumentName);
    if (!document) {
      throw new SsmRequestError(`InvalidDocument: document ${request.DocumentName} does not exist`);
    }
    if ((request.InstanceIds?.length ?? 0) > 50) {
      throw new SsmRequestError(
        `ValidationException: InstanceIds has ${request.InstanceIds!.length} members; at most 50 are allowed`,
      );
    }
    const hosts = request.InstanceIds
      ? request.InstanceIds.map((id) => {
          const host = this.hosts.find((candidate) => candidate.instanceId === id);
          if (!host) throw new SsmRequestError(`InvalidInstanceId: ${id} is not a managed instance`);
          return host;
        })
      : (request.Targets ?? []).flatMap((target) => {
          if (!target.Key.startsWith("tag:")) throw new SsmRequestError(`InvalidTarget: ${target.Key}`);
          return this.instancesTagged(target.Key.slice(4), target.Values);
        });
    for (const host of hosts) {
      const context: Record<string, string> = {};
      for (const [key, value] of Object.entries(host.tags)) {
        context[`ssm:resourceTag/${key}`] = value;
        context[`aws:ResourceTag/${key}`] = value;
      }
      this.authorize(
        caller,
        "ssm:SendCommand",
        `arn:aws:ec2:us-east-1:123456789012:instance/${host.instanceId}`,
        context,
      );
    }
    const env = this.parameterEnvironment(document, request.Parameters ?? {});
    const commandId = randomUUID();
    const invocations = hosts.map((host) => this.start(commandId, document, host, env));
    const output = request.CloudWatchOutputConfig;
    if (output?.CloudWatchOutputEnabled) {
      for (const invocation of invocations) this.streamOutput(invocation, output.CloudWatchLogGroupName);
    }
    return { commandId, invocations };
  }

  /**
   * CloudWatch output as the SSM Agent sends it, with the instance's own credentials: it finds
   * the group (DescribeLogGroups), creates its stream and puts the output. Without those
   * permissions the output never arrives (the agent logs the error on the instance).
   */
  private streamOutput(invocation: Invocation, group = `/aws/ssm/${invocation.document.name}`): void {
    const host = this.hosts.find((h) => h.instanceId === invocation.instanceId)!;
    const iam = this.access.iam;
    const principal = iam?.enforcing ? iam.principalFor(host.environment?.AWS_ACCESS_KEY_ID) : undefined;
    invocation.cloudWatchOutput = "pending";
    invocation.done.then(() => {
      const groupArn = `arn:aws:logs:us-east-1:123456789012:log-group:${group}`;
      try {
        for (const [action, resource] of [
          ["logs:DescribeLogGroups", "arn:aws:logs:us-east-1:123456789012:log-group:*"],
          ["logs:CreateLogStream", `${groupArn}:*`],
          ["logs:PutLogEvents", `${groupArn}:*`],
        ] as const) {
          this.access.counts?.add("CloudWatchLogs", action.slice(5));
          if (principal) iam!.authorize({ principal, action, resource });
        }
        invocation.cloudWatchOutput = "delivered";
      } catch {
        invocation.cloudWatchOutput = "denied";
      }
    });
  }

  invocation(commandId: string, instanceId: string): Invocation | undefined {
    return this.invocations.get(`${commandId}/${instanceId}`);
  }

  private parameterEnvironment(
    document: AgentDocumentContent,
    parameters: Record<string, string[]>,
  ): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [name, values] of Object.entries(parameters)) {
      const declared = document.parameters[name];
      if (!declared)
        throw new SsmRequestError(`InvalidParameters: ${name} is not a parameter of ${document.name}`);
      if (!Array.isArray(values) || values.length !== 1 || typeof values[0] !== "string") {
        throw new SsmRequestError(`InvalidParameters: ${name} must be a list of one string`);
      }
    }
    for (const [name, declared] of Object.entries(document.parameters)) {
      const value = parameters[name]?.[0] ?? declared.default ?? "";
      if (declared.allowedPattern && !new RegExp(declared.allowedPattern).test(value)) {
        throw new SsmRequestError(
          `InvalidParameters: parameter "${name}" "${value}" does not match the allowed pattern ${declared.allowedPattern}`,
        );
      }
      env[`SSM_${name}`] = value;
    }
    return env;
  }

  private start(
    commandId: string,
    document: AgentDocumentContent,
    host: SandboxHost,
    parameterEnv: Record<string, string>,
  ): Invocation {
    const fault = this.faults.findIndex((f) => f.instanceId === host.instanceId && f.match(parameterEnv));
    if (fault >= 0) {
      this.faults.splice(fault, 1);
      const undelivered: Invocation = {
        commandId,
        instanceId: host.instanceId,
        document,
        status: "Undeliverable",
        exitCode: null,
        stdout: "",
        stderr: "the instance did not receive the command (a fault the sandbox injected)",
        done: Promise.resolve(),
      };
      this.invocations.set(`${commandId}/${host.instanceId}`, undelivered);
      return undelivered;
    }
    // Host paths live under the host's own root directory.
    const root = hostRoot(host);
    const onHost = (hostPath: string) => path.join(root, hostPath);
    if (document.destinationPath !== null)
      downloadContent(this.agentBundle, onHost(document.destinationPath), document.downloadedName);
    const script = document.runCommand
      .join("\n")
      .replaceAll(document.downloadDir, onHost(document.downloadDir))
      .replaceAll(document.configPath, host.configFile);
    const child: ChildProcess = track(
      spawn("bash", ["-c", script], {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...withoutRegion(process.env),
          ...this.env,
          // The host's SSM Agent, as `rewind-agent doctor` looks for it: the stand-in is one.
          PATH: `${ssmAgentShim(root)}:${process.env.PATH ?? ""}`,
          // What SSM Agent sets for Run Command (amazon-ssm-agent's runscript plugin): no AWS_REGION.
          AWS_SSM_INSTANCE_ID: host.instanceId,
          ...host.environment,
          ...parameterEnv,
        },
      }),
    );
    let resolveDone: () => void = () => {};
    const invocation: Invocation = {
      commandId,
      instanceId: host.instanceId,
      document,
      status: "InProgress",
      exitCode: null,
      stdout: "",
      stderr: "",
      done: new Promise<void>((resolve) => {
        resolveDone = resolve;
      }),
    };
    child.stdout!.on("data", (chunk: Buffer) => {
      invocation.stdout = (invocation.stdout + chunk.toString()).slice(-OUTPUT_LIMIT);
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      invocation.stderr = (invocation.stderr + chunk.toString()).slice(-OUTPUT_LIMIT);
    });
    child.once("close", (code) => {
      invocation.exitCode = code;
      invocation.status = code === 0 ? "Success" : "Failed";
      resolveDone();
    });
    this.invocations.set(`${commandId}/${host.instanceId}`, invocation);
    return invocation;
  }

  /** The SSM API endpoint for the Lambdas' SSM client (`REWIND_SSM_ENDPOINT`). */
  async listen(): Promise<string> {
    ({ server: this.server, endpoint: this.endpoint } = await serveAwsJson({
      targetPrefix: "AmazonSSM.",
      contentType: "application/x-amz-json-1.1",
      service: "SSM",
      answer: (operation, input, accessKeyId) => {
        const caller = jsonCaller(this.access.iam, accessKeyId);
        try {
          return this.answer(operation, input, caller);
        } catch (error) {
          if (!(error instanceof SsmRequestError)) throw error;
          const [type, ...rest] = error.message.split(": ");
          throw new AwsApiError(type!, rest.join(": "));
        }
      },
    }));
    return this.endpoint;
  }

  private answer(target: string, input: Record<string, unknown>, caller: IamPrincipal | undefined): unknown {
    if (target === "GetParameter") {
      // Authorised on the parameter: arn:aws:ssm:<region>:<account>:parameter/<name without its
      // leading slash> (Systems Manager User Guide, "Parameter Store" IAM examples).
      this.access.counts?.add("SSM", target);
      const name = String(input.Name ?? "");
      this.authorize(
        caller,
        "ssm:GetParameter",
        `arn:aws:ssm:us-east-1:123456789012:parameter/${name.replace(/^\//, "")}`,
      );
      const value = this.parameters.get(name);
      if (value === undefined) throw new SsmRequestError(`ParameterNotFound: ${name}`);
      return { Parameter: { Name: name, Type: "String", Value: value, Version: 1 } };
    }
    if (target !== "SendCommand") {
      this.access.counts?.add("SSM", target);
      this.authorize(caller, `ssm:${target}`, "*");
    }
    switch (target) {
      case "DescribeInstanceInformation": {
        let hosts = [...this.hosts];
        for (const filter of (input.Filters as { Key: string; Values: string[] }[] | undefined) ?? []) {
          if (filter.Key.startsWith("tag:"))
            hosts = hosts.filter((h) => filter.Values.includes(h.tags[filter.Key.slice(4)] ?? ""));
          else if (filter.Key === "PingStatus" && !filter.Values.includes("Online")) hosts = [];
        }
        return {
          InstanceInformationList: hosts.map((host) => ({
            InstanceId: host.instanceId,
            PingStatus: "Online",
            ComputerName: host.name,
          })),
        };
      }
      case "SendCommand": {
        const { commandId, invocations } = this.sendCommand(
          input as Parameters<LocalSsm["sendCommand"]>[0],
          caller,
        );
        return {
          Command: {
            CommandId: commandId,
            DocumentName: String(input.DocumentName),
            InstanceIds: invocations.map((i) => i.instanceId),
            Status: "Pending",
          },
        };
      }
      case "GetCommandInvocation": {
        const found = this.invocation(String(input.CommandId), String(input.InstanceId));
        if (!found)
          throw new SsmRequestError(
            `InvocationDoesNotExist: no invocation ${input.CommandId} on ${input.InstanceId}`,
          );
        // The API reference: PluginName is required when the document has more than one step.
        const plugin = input.PluginName as string | undefined;
        const { document } = found;
        if (plugin === undefined && document.stepNames.length > 1) {
          throw new SsmRequestError(
            `InvalidPluginName: ${document.name} has ${document.stepNames.length} steps; name one with PluginName`,
          );
        }
        if (plugin !== undefined && !document.stepNames.includes(plugin))
          throw new SsmRequestError(`InvalidPluginName: ${document.name} has no step ${plugin}`);
        if (plugin !== undefined && plugin !== document.shellStep) {
          return {
            CommandId: found.commandId,
            InstanceId: found.instanceId,
            PluginName: plugin,
            Status: "Success",
            StatusDetails: "Success",
            ResponseCode: 0,
            StandardOutputContent: "",
            StandardErrorContent: "",
          };
        }
        return {
          PluginName: plugin,
          CommandId: found.commandId,
          InstanceId: found.instanceId,
          Status: found.status,
          StatusDetails: found.status,
          ResponseCode: found.exitCode ?? -1,
          StandardOutputContent: found.stdout,
          StandardErrorContent: found.stderr.slice(-8000),
        };
      }
      default:
        throw new SsmRequestError(`UnknownOperationException: the sandbox does not offer ${target}`);
    }
  }

  close(): void {
    this.server?.close();
  }
}

/**
 * The environment a host process inherits, less the region: on a host nothing sets AWS_REGION
 * (SSM Agent names it AWS_SSM_REGION_NAME; a systemd unit names none), so the agent must not
 * depend on it.
 */
/** The SSM Agent version the stand-in plays: the first that passes parameters as environment variables. */
export const STAND_IN_SSM_AGENT_VERSION = MINIMUM_SSM_AGENT;

/** A directory under the host's root with an `amazon-ssm-agent` that answers `-version` like the real one. */
export function ssmAgentShim(root: string, version = STAND_IN_SSM_AGENT_VERSION): string {
  const dir = path.join(root, "ssm-agent-bin");
  const binary = path.join(dir, "amazon-ssm-agent");
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(binary, `#!/bin/sh\necho "SSM Agent version: ${version}"\n`, { mode: 0o755 });
  }
  return dir;
}

export function withoutRegion(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { AWS_REGION: _region, AWS_DEFAULT_REGION: _default, ...rest } = env;
  return rest;
}

/** A sandbox host's file system root: `/opt/rewind/…` on the host is `<root>/opt/rewind/…`. */
export function hostRoot(host: Pick<SandboxHost, "dir">): string {
  return path.join(host.dir, "root");
}
