import type * as s3assets from "aws-cdk-lib/aws-s3-assets";
import * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";
import { AGENT_SHELL_STEP } from "../core/agent-output.js";
import { DOCUMENT_PATTERNS, MINIMUM_SSM_AGENT } from "../core/contracts/agent-document.js";
import { deploymentNames } from "../core/contracts/deployment.js";

export interface AgentDocumentProps {
  /** The bundled agent (`dist/rewind-agent.mjs`), shipped as an S3 asset. */
  readonly agentAsset: s3assets.Asset;
  /**
   * Where the agent's config lives on the database hosts.
   * @default /etc/rewind/agent.json
   */
  readonly configPath?: string;
  /** The document's name (`Rewind-RunAgent`; DeploymentNames.runAgentDocument). */
  readonly name?: string;
}

/**
 * Each parameter reaches the shell as an environment variable (interpolationType ENV_VAR) and is
 * constrained by a pattern, so no parameter value can inject shell.
 */
export const AGENT_DOCUMENT_PARAMETERS = {
  Command: { pattern: DOCUMENT_PATTERNS.Command, default: "status" },
  Type: { pattern: DOCUMENT_PATTERNS.Type, default: "" },
  Plan: { pattern: DOCUMENT_PATTERNS.Plan, default: "" },
  TaskToken: { pattern: DOCUMENT_PATTERNS.TaskToken, default: "" },
  Cluster: { pattern: DOCUMENT_PATTERNS.Cluster, default: "" },
  Step: { pattern: DOCUMENT_PATTERNS.Step, default: "" },
  SecretVersion: { pattern: DOCUMENT_PATTERNS.SecretVersion, default: "" },
} as const;

const MINIMUM_AGENT_MESSAGE = `Rewind-RunAgent needs SSM Agent ${MINIMUM_SSM_AGENT} or later (parameters as environment variables); this host's agent is older and passed none. Update amazon-ssm-agent on this host (AWS-UpdateSSMAgent) and run the command again`;

/** Each declared parameter as SSM takes it: a string, constrained, passed as an environment variable. */
function documentParameters(
  declared: Record<string, { readonly pattern: string; readonly default: string }>,
) {
  return Object.fromEntries(
    Object.entries(declared).map(([name, { pattern, default: defaultValue }]) => [
      name,
      { type: "String", default: defaultValue, allowedPattern: pattern, interpolationType: "ENV_VAR" },
    ]),
  );
}

/** The script's first lines: strict, and refusing an SSM Agent too old to pass parameters. */
const SCRIPT_PRELUDE = [
  "set -eu",
  // Parameters arrive as SSM_<name> environment variables only from SSM Agent 3.3.2746.0 on.
  'if [ -z "${SSM_Command+set}" ]; then',
  `  echo "${MINIMUM_AGENT_MESSAGE}" >&2`,
  "  exit 1",
  "fi",
];

/** The agent config's path on the hosts; it is written into a shell script, so only plain characters. */
function checkedConfigPath(configPath = "/etc/rewind/agent.json"): string {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(configPath)) {
    throw new Error(
      `configPath "${configPath}" must be an absolute path of letters, digits, '.', '_', '-' and '/'`,
    );
  }
  return configPath;
}

/** A Command document (schema 2.2, JSON, a new version on each change) whose last step is the agent's shell step. */
function commandDocument(
  scope: Construct,
  document: {
    readonly name: string;
    readonly description: string;
    readonly parameters: Record<string, unknown>;
    readonly before?: readonly Record<string, unknown>[];
    readonly script: readonly string[];
    readonly timeoutSeconds: number;
  },
): ssm.CfnDocument {
  return new ssm.CfnDocument(scope, "Document", {
    name: document.name,
    documentType: "Command",
    documentFormat: "JSON",
    updateMethod: "NewVersion",
    content: {
      schemaVersion: "2.2",
      description: document.description,
      parameters: document.parameters,
      mainSteps: [
        ...(document.before ?? []),
        {
          action: "aws:runShellScript",
          name: AGENT_SHELL_STEP,
          inputs: { timeoutSeconds: String(document.timeoutSeconds), runCommand: document.script },
        },
      ],
    },
  });
}

/** `Rewind-RunAgent`: downloads the agent bundle and runs one command of it on a database host. */
export class AgentDocument extends Construct {
  readonly document: ssm.CfnDocument;
  readonly documentName: string;

  constructor(scope: Construct, id: string, props: AgentDocumentProps) {
    super(scope, id);
    this.documentName = props.name ?? deploymentNames().runAgentDocument;
    const configPath = checkedConfigPath(props.configPath);
    const parameters = documentParameters(AGENT_DOCUMENT_PARAMETERS);
    const script = [
      ...SCRIPT_PRELUDE,
      `agent=/opt/rewind/${props.agentAsset.s3ObjectKey}`,
      // --flag=value: a value that starts with "-" (task tokens can) stays the flag's value.
      `set -- "$SSM_Command" --config ${configPath}`,
      '[ -n "$SSM_Type" ] && set -- "$@" --type="$SSM_Type"',
      '[ -n "$SSM_Plan" ] && set -- "$@" --plan="$SSM_Plan"',
      '[ -n "$SSM_Cluster" ] && set -- "$@" --expect-cluster="$SSM_Cluster"',
      '[ -n "$SSM_Step" ] && set -- "$@" --step="$SSM_Step"',
      '[ -n "$SSM_SecretVersion" ] && set -- "$@" --secret-version="$SSM_SecretVersion"',
      // In the environment, not argv: any local user can read a process's command line.
      'export REWIND_TASK_TOKEN="$SSM_TaskToken"',
      'exec node "$agent" "$@"',
    ];
    this.document = commandDocument(this, {
      name: this.documentName,
      description:
        "Runs one command of the Rewind host agent; the result goes to Step Functions by task token",
      parameters,
      before: [
        {
          action: "aws:downloadContent",
          name: "DownloadAgent",
          inputs: {
            sourceType: "S3",
            sourceInfo: JSON.stringify({ path: props.agentAsset.httpUrl }),
            // The trailing slash makes it a directory: without one, the SSM Agent saves the
            // file itself as /opt/rewind and the shell step finds no agent to run.
            destinationPath: "/opt/rewind/",
          },
        },
      ],
      script,
      timeoutSeconds: 172800,
    });
  }
}

/**
 * The parameters of `Rewind-RunInstalledAgent`: the watchdog's command only. The agent's commands
 * that a state machine runs go through Rewind-RunAgent, which brings the deployed bundle.
 */
export const INSTALLED_AGENT_DOCUMENT_PARAMETERS = {
  Command: { pattern: DOCUMENT_PATTERNS.InstalledCommand, default: "binlog-push" },
} as const;

/** Where `rewind-agent install` puts the bundle the service (and the watchdog) runs. */
export const INSTALLED_AGENT = "/opt/rewind/rewind-agent.mjs";

/**
 * `Rewind-RunInstalledAgent`: runs the bundle `install` put on the host, with no download. The
 * per-minute watchdog uses it: Rewind-RunAgent's aws:downloadContent would fetch the whole
 * bundle on every run (about 164 GB per host-month, through a NAT gateway). The install
 * association keeps the installed bundle current (every 30 minutes and after each deploy).
 */
export class InstalledAgentDocument extends Construct {
  readonly document: ssm.CfnDocument;
  readonly documentName: string;

  constructor(
    scope: Construct,
    id: string,
    props: { readonly configPath?: string; readonly name?: string } = {},
  ) {
    super(scope, id);
    this.documentName = props.name ?? deploymentNames().installedAgentDocument;
    const configPath = checkedConfigPath(props.configPath);
    const parameters = documentParameters(INSTALLED_AGENT_DOCUMENT_PARAMETERS);
    const script = [
      ...SCRIPT_PRELUDE,
      `agent=${INSTALLED_AGENT}`,
      'if [ ! -f "$agent" ]; then',
      `  echo "Rewind is not installed on this host yet ($agent is missing): its rewind-install association installs it within 30 minutes of tagging; run Rewind-RunAgent with Command install to do it now" >&2`,
      "  exit 1",
      "fi",
      `set -- "$SSM_Command" --config ${configPath}`,
      'exec node "$agent" "$@"',
    ];
    this.document = commandDocument(this, {
      name: this.documentName,
      description:
        "Runs the Rewind host agent installed on the host (the binlog watchdog); downloads nothing",
      parameters,
      script,
      timeoutSeconds: 600,
    });
  }
}
