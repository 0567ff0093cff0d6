/**
 * The state machines as deployed: each `AWS::StepFunctions::StateMachine`'s DefinitionString from
 * the synthesized template, with `Fn::Join`, `Ref`, `Fn::GetAtt` and pseudo parameters resolved to
 * placeholder ARNs (DESIGN §5, local sandbox). Tests and the sandbox run exactly this ASL.
 */
export const PLACEHOLDER = { account: "123456789012", region: "us-east-1", partition: "aws" } as const;

export type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };

export interface AslDefinition {
  readonly StartAt: string;
  readonly States: Record<string, AslState>;
  readonly Comment?: string;
  readonly QueryLanguage?: string;
}

export interface AslState {
  readonly Type: string;
  readonly Resource?: string;
  readonly Parameters?: Record<string, unknown>;
  readonly HeartbeatSeconds?: number;
  readonly TimeoutSeconds?: number;
  readonly Retry?: { ErrorEquals: string[]; MaxAttempts?: number }[];
  readonly Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
  readonly Next?: string;
  readonly End?: boolean;
  readonly [field: string]: unknown;
}

/** Names the sandbox gives resources instead of placeholders (the bucket it really created). */
export type NameOverrides = Readonly<Record<string, string>>;

function placeholderFor(
  logicalId: string,
  template: Template,
  attribute?: string,
  names: NameOverrides = {},
): string {
  const resource = template.Resources[logicalId];
  const named = names[logicalId];
  if (named !== undefined) {
    return resource?.Type === "AWS::S3::Bucket" && attribute === "Arn" ? `arn:aws:s3:::${named}` : named;
  }
  const { account, region, partition } = PLACEHOLDER;
  switch (resource?.Type) {
    case "AWS::Lambda::Function":
      return `arn:${partition}:lambda:${region}:${account}:function:${logicalId}`;
    case "AWS::SNS::Topic":
      return `arn:${partition}:sns:${region}:${account}:${logicalId}`;
    case "AWS::StepFunctions::StateMachine":
      return `arn:${partition}:states:${region}:${account}:stateMachine:${logicalId}`;
    case "AWS::S3::Bucket":
      return attribute === "Arn"
        ? `arn:${partition}:s3:::${logicalId.toLowerCase()}`
        : logicalId.toLowerCase();
    case "AWS::KMS::Key":
      return attribute === "Arn" ? `arn:${partition}:kms:${region}:${account}:key/${logicalId}` : logicalId;
    case "AWS::IAM::Role":
      return attribute === "Arn" ? `arn:${partition}:iam::${account}:role/${logicalId}` : logicalId;
    case "AWS::IAM::ManagedPolicy":
      return `arn:${partition}:iam::${account}:policy/${logicalId}`;
    case "AWS::SecretsManager::Secret":
      // A secret's ARN ends in six random characters after its name.
      return `arn:${partition}:secretsmanager:${region}:${account}:secret:${resource.Properties?.Name ?? logicalId}-Rw1nd0`;
    case "AWS::SSM::Document":
      return String(resource.Properties?.Name ?? logicalId);
    case "AWS::Logs::LogGroup": {
      const name = String(resolveIntrinsics(resource.Properties?.LogGroupName ?? logicalId, template, names));
      return attribute === "Arn" ? `arn:${partition}:logs:${region}:${account}:log-group:${name}:*` : name;
    }
    case "AWS::SQS::Queue":
      return attribute === "Arn"
        ? `arn:${partition}:sqs:${region}:${account}:${logicalId}`
        : `https://sqs.${region}.amazonaws.com/${account}/${logicalId}`;
    default:
      return `${logicalId}${attribute ? `.${attribute}` : ""}`;
  }
}

/** Resolves the intrinsics CDK writes (`Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`) to placeholder names and ARNs. */
export function resolveIntrinsics(value: unknown, template: Template, names: NameOverrides = {}): unknown {
  if (typeof value === "string" || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => resolveIntrinsics(item, template, names));
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[fn, args]] = entries as [[string, unknown]];
    if (fn === "Ref") {
      const ref = args as string;
      if (ref === "AWS::AccountId") return PLACEHOLDER.account;
      if (ref === "AWS::Region") return PLACEHOLDER.region;
      if (ref === "AWS::Partition") return PLACEHOLDER.partition;
      if (ref === "AWS::URLSuffix") return "amazonaws.com";
      return placeholderFor(ref, template, undefined, names);
    }
    if (fn === "Fn::GetAtt") {
      const [logicalId, attribute] = args as [string, string];
      return placeholderFor(logicalId, template, attribute, names);
    }
    if (fn === "Fn::Join") {
      const [separator, parts] = args as [string, unknown[]];
      return parts.map((part) => resolveIntrinsics(part, template, names)).join(separator);
    }
    if (fn === "Fn::Sub" && typeof args === "string") {
      return args.replace(/\$\{([^}]+)\}/g, (_, name: string) =>
        String(
          name.includes(".")
            ? resolveIntrinsics({ "Fn::GetAtt": name.split(".") }, template, names)
            : resolveIntrinsics({ Ref: name }, template, names),
        ),
      );
    }
  }
  return Object.fromEntries(entries.map(([key, item]) => [key, resolveIntrinsics(item, template, names)]));
}

/** Every state machine of the template by its StateMachineName (`Rewind-Backup`, …). */
export function stateMachineDefinitions(template: Template): Record<string, AslDefinition> {
  const definitions: Record<string, AslDefinition> = {};
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== "AWS::StepFunctions::StateMachine") continue;
    const name = (resource.Properties?.StateMachineName as string | undefined) ?? logicalId;
    const text = resolveIntrinsics(resource.Properties?.DefinitionString, template);
    if (typeof text !== "string") throw new Error(`state machine ${name} has no DefinitionString`);
    definitions[name] = JSON.parse(text) as AslDefinition;
  }
  return definitions;
}
