import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { DEFAULT_DEPLOYMENT, HOST_POLICY_METADATA } from "../../core/contracts/deployment.js";
import {
  type NameOverrides,
  PLACEHOLDER,
  resolveIntrinsics,
  type Template,
} from "../state-machine-definitions.js";

/**
 * @cloud-copilot/iam-simulate's evaluator, entered below its checked API: `runSimulation` drops
 * context keys whose variable part follows a colon (`kms:EncryptionContext:cluster`, which the
 * host policy's conditions need), and `runUnsafeSimulation` crashes on a resource policy (it loads
 * it without a name). This is `runUnsafeSimulation` with that fixed.
 */
const require = createRequire(import.meta.url);
const simulator = path.dirname(require.resolve("@cloud-copilot/iam-simulate"));
const { loadPolicy } = require("@cloud-copilot/iam-policy") as {
  loadPolicy: (policy: unknown, metadata: { name: string }) => unknown;
};
const { authorize } = require(path.join(simulator, "core_engine/CoreSimulatorEngine.js")) as {
  authorize: (request: unknown) => { result: string };
};
const { AwsRequestImpl } = require(path.join(simulator, "request/request.js")) as {
  AwsRequestImpl: new (principal: string, resource: unknown, action: string, context: unknown) => unknown;
};
const { RequestContextImpl } = require(path.join(simulator, "requestContext.js")) as {
  RequestContextImpl: new (values: unknown) => unknown;
};
const { DiscoveryContextKeyConstraints } = require(
  path.join(simulator, "context_keys/discoveryContextKeyConstraints.js"),
) as { DiscoveryContextKeyConstraints: new (constraints: unknown[]) => unknown };

function evaluate(input: {
  principal: string;
  action: string;
  resource: string;
  account: string;
  context: Record<string, string | readonly string[]>;
  identityPolicies: readonly { name: string; policy: unknown }[];
  resourcePolicy?: unknown;
}): "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" {
  const analysis = authorize({
    request: new AwsRequestImpl(
      input.principal,
      { resource: input.resource, accountId: input.account },
      input.action,
      new RequestContextImpl(input.context),
    ),
    sessionPolicy: undefined,
    identityPolicies: input.identityPolicies.map(({ name, policy }) => loadPolicy(policy, { name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: input.resourcePolicy
      ? loadPolicy(input.resourcePolicy, { name: "resource policy" })
      : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: "Strict",
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]),
    },
    serviceSettings: { s3: { blockPublicAccess: undefined } },
  });
  return analysis.result as "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";
}

/** An IAM policy document as the template holds it, intrinsics resolved. */
export type PolicyDocument = { readonly Version?: string; readonly Statement: unknown };

/** Who calls a sandbox stand-in: one role, its policies, and the credentials it signs with. */
export interface IamPrincipal {
  /** What the sandbox prints: `host db-primary`, `Lambda select-source`, … */
  readonly name: string;
  /** The role's ARN, as the policies see it. */
  readonly arn: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly policies: readonly { readonly name: string; readonly policy: PolicyDocument }[];
}

/**
 * What the stand-ins authorise against, taken from the synthesized template: every principal and
 * every resource policy (bucket policy, key policies). Plain JSON, so the S3 stand-in's own
 * process can load it.
 */
export interface IamModel {
  readonly account: string;
  readonly principals: readonly IamPrincipal[];
  /** Resource ARN → its resource policy: the bucket's ARN for its policy, a key's ARN for its key policy. */
  readonly resourcePolicies: Readonly<Record<string, PolicyDocument>>;
}

export interface IamRequest {
  readonly principal: IamPrincipal;
  readonly action: string;
  readonly resource: string;
  /** Condition keys of this request (`s3:prefix`, `kms:EncryptionContext:cluster`, …). */
  readonly context?: Readonly<Record<string, string | readonly string[]>>;
}

/** A request IAM refused: who, what, on which resource, and whether a policy said no or none said yes. */
export class AccessDenied extends Error {
  constructor(
    readonly request: IamRequest,
    readonly decision: string,
  ) {
    super(
      `${request.principal.name} (${request.principal.arn}) may not ${request.action} on ${request.resource}: ${decision === "ExplicitlyDenied" ? "an explicit Deny applies" : "no policy allows it"}`,
    );
    this.name = "AccessDenied";
  }
}

/** A principal's access key id, stable for a role so logs and tests can recognise it. */
function accessKeyFor(arn: string): string {
  return `AKIA${createHash("sha256").update(arn).digest("hex").slice(0, 16).toUpperCase()}`;
}

function principal(name: string, arn: string, policies: IamPrincipal["policies"]): IamPrincipal {
  const accessKeyId = accessKeyFor(arn);
  return {
    name,
    arn,
    accessKeyId,
    secretAccessKey: createHash("sha256").update(`secret:${arn}`).digest("base64url"),
    policies,
  };
}

/** The instance role a cluster's database hosts share in the sandbox (outside the stack, as in AWS). */
export function hostRoleArn(cluster: string, deployment = DEFAULT_DEPLOYMENT): string {
  return `arn:aws:iam::${PLACEHOLDER.account}:role/${deployment}-host-${cluster}`;
}

/**
 * How a deployment's principals are named in the sandbox: `Lambda select-source` for the default
 * one, `staging: Lambda select-source` for another, so two deployments can share the stand-ins.
 */
export function deploymentPrefix(deployment: string): string {
  return deployment === DEFAULT_DEPLOYMENT ? "" : `${deployment}: `;
}

/** The sandbox operator: the person at the console or the tests, allowed everything. */
export function operatorPrincipal(): IamPrincipal {
  return principal("sandbox operator", `arn:aws:iam::${PLACEHOLDER.account}:role/sandbox-operator`, [
    {
      name: "AdministratorAccess",
      policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
    },
  ]);
}

/** Every policy attached to the role with this logical id: inline, AWS::IAM::Policy, managed ones from the template. */
function rolePolicies(template: Template, roleId: string, names: NameOverrides): IamPrincipal["policies"] {
  const resolve = (value: unknown) => resolveIntrinsics(value, template, names) as PolicyDocument;
  const role = template.Resources[roleId]!;
  const refersToRole = (roles: unknown) =>
    Array.isArray(roles) && roles.some((ref) => (ref as { Ref?: string }).Ref === roleId);
  const policies: { name: string; policy: PolicyDocument }[] = [];
  for (const inline of (role.Properties?.Policies as { PolicyName: string; PolicyDocument: unknown }[]) ??
    []) {
    policies.push({ name: inline.PolicyName, policy: resolve(inline.PolicyDocument) });
  }
  for (const [id, resource] of Object.entries(template.Resources)) {
    const attached =
      (resource.Type === "AWS::IAM::Policy" || resource.Type === "AWS::IAM::ManagedPolicy") &&
      refersToRole(resource.Properties?.Roles);
    const managedArns = (role.Properties?.ManagedPolicyArns as unknown[]) ?? [];
    const listed =
      resource.Type === "AWS::IAM::ManagedPolicy" &&
      managedArns.some((ref) => (ref as { Ref?: string }).Ref === id);
    if (attached || listed) policies.push({ name: id, policy: resolve(resource.Properties?.PolicyDocument) });
  }
  return policies;
}

function roleOf(value: unknown): string | undefined {
  const getAtt = (value as { "Fn::GetAtt"?: [string, string] } | undefined)?.["Fn::GetAtt"];
  return getAtt?.[1] === "Arn" ? getAtt[0] : undefined;
}

/**
 * The principals of a deployed Rewind, from its template: each Lambda's role (named by its
 * handler folder), each state machine's role, Scheduler's role, and one instance role per
 * cluster with that cluster's host policy attached (the managed policy whose metadata names it).
 */
export function iamModelFromTemplate(
  template: Template & { Outputs?: Record<string, { Value: unknown }> },
  names: NameOverrides,
  lambdaNames: Readonly<Record<string, string>>,
  /** A deployment other than the default: its principals' names start `<deployment>: `. */
  deployment = DEFAULT_DEPLOYMENT,
): IamModel {
  const named = (name: string) => `${deploymentPrefix(deployment)}${name}`;
  const resources = Object.entries(template.Resources);
  const principals: IamPrincipal[] = [];
  const roleArn = (roleId: string) => resolveIntrinsics({ "Fn::GetAtt": [roleId, "Arn"] }, template, names);
  const addRole = (name: string, roleId: string | undefined) => {
    if (!roleId || principals.some((p) => p.arn === roleArn(roleId))) return;
    principals.push(principal(named(name), String(roleArn(roleId)), rolePolicies(template, roleId, names)));
  };
  const ofType = (type: string) => resources.filter(([, resource]) => resource.Type === type);
  for (const [id, fn] of ofType("AWS::Lambda::Function")) {
    addRole(`Lambda ${lambdaNames[id] ?? id}`, roleOf(fn.Properties?.Role));
  }
  for (const [id, machine] of ofType("AWS::StepFunctions::StateMachine")) {
    addRole(
      `state machine ${machine.Properties?.StateMachineName ?? id}`,
      roleOf(machine.Properties?.RoleArn),
    );
  }
  for (const [, schedule] of ofType("AWS::Scheduler::Schedule")) {
    addRole("EventBridge Scheduler", roleOf((schedule.Properties?.Target as { RoleArn?: unknown })?.RoleArn));
  }
  for (const [policyId, policy] of ofType("AWS::IAM::ManagedPolicy")) {
    const cluster = (policy as { Metadata?: Record<string, unknown> }).Metadata?.[HOST_POLICY_METADATA];
    if (typeof cluster !== "string") continue;
    principals.push(
      principal(named(`${cluster} database hosts`), hostRoleArn(cluster, deployment), [
        {
          name: policyId,
          policy: resolveIntrinsics(policy.Properties?.PolicyDocument, template, names) as PolicyDocument,
        },
      ]),
    );
  }
  const resourcePolicies: Record<string, PolicyDocument> = {};
  for (const [, bucketPolicy] of ofType("AWS::S3::BucketPolicy")) {
    const bucket = String(resolveIntrinsics(bucketPolicy.Properties?.Bucket, template, names));
    resourcePolicies[`arn:aws:s3:::${bucket}`] = resolveIntrinsics(
      bucketPolicy.Properties?.PolicyDocument,
      template,
      names,
    ) as PolicyDocument;
  }
  for (const [id, key] of ofType("AWS::KMS::Key")) {
    const arn = String(resolveIntrinsics({ "Fn::GetAtt": [id, "Arn"] }, template, names));
    resourcePolicies[arn] = resolveIntrinsics(key.Properties?.KeyPolicy, template, names) as PolicyDocument;
  }
  return { account: PLACEHOLDER.account, principals, resourcePolicies };
}

/** The service a resource ARN belongs to decides whether its resource policy must allow as well. */
function resourcePolicyFor(model: IamModel, resource: string): PolicyDocument | undefined {
  const exact = model.resourcePolicies[resource];
  if (exact) return exact;
  const bucket = /^arn:aws:s3:::([^/]+)/.exec(resource)?.[1];
  return bucket ? model.resourcePolicies[`arn:aws:s3:::${bucket}`] : undefined;
}

/**
 * IAM as the sandbox's stand-ins apply it: each request is evaluated by @cloud-copilot/iam-simulate
 * against the caller's policies and the resource's policy, conditions included. Without a model
 * (the integration tests' bare stand-ins) every request is allowed and only counted.
 */
export class SandboxIam {
  private readonly byKey = new Map<string, IamPrincipal>();
  /** Every denial, as printed: principal, action, resource. */
  readonly denials: string[] = [];

  constructor(
    readonly model: IamModel | undefined,
    private readonly log: (line: string) => void = (line) => console.error(line),
  ) {
    for (const p of model?.principals ?? []) this.byKey.set(p.accessKeyId, p);
  }

  get enforcing(): boolean {
    return this.model !== undefined;
  }

  /** The principal signing with this access key id, or undefined for an unknown key. */
  principalFor(accessKeyId: string | undefined): IamPrincipal | undefined {
    return accessKeyId ? this.byKey.get(accessKeyId) : undefined;
  }

  principalNamed(name: string): IamPrincipal {
    const found = this.model?.principals.find((p) => p.name === name);
    if (!found) throw new Error(`the sandbox has no principal "${name}"`);
    return found;
  }

  /** Allowed, or why not (ImplicitlyDenied / ExplicitlyDenied). */
  decide(request: IamRequest): "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" {
    if (!this.model) return "Allowed";
    const resourcePolicy = resourcePolicyFor(this.model, request.resource);
    return evaluate({
      principal: request.principal.arn,
      action: request.action,
      resource: request.resource,
      account: this.model.account,
      identityPolicies: request.principal.policies,
      resourcePolicy,
      context: {
        // Every stand-in is reached as AWS is: over TLS, by a caller of this account.
        "aws:SecureTransport": "true",
        "aws:PrincipalArn": request.principal.arn,
        "aws:PrincipalAccount": this.model.account,
        ...request.context,
      },
    });
  }

  /** Throws AccessDenied (and prints it) unless the request is allowed. */
  authorize(request: IamRequest): void {
    const decision = this.decide(request);
    if (decision === "Allowed") return;
    const denied = new AccessDenied(request, decision);
    this.denials.push(denied.message);
    this.log(`sandbox IAM: ${denied.message}`);
    throw denied;
  }
}
