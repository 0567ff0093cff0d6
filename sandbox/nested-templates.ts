import { readFileSync } from "node:fs";
import path from "node:path";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import type { RewindStack } from "../infra/rewind-stack.js";
import type { Template } from "./state-machine-definitions.js";

type Json = unknown;

/** A template as `cdk synth` writes it, with what the stand-ins read beside the resources. */
export type FullTemplate = Template & {
  Parameters?: Record<string, unknown>;
  Outputs?: Record<string, { Value: unknown; Description?: string }>;
};

/** A nested stack of the parent: its resource's logical id and its template file in the assembly. */
export interface NestedTemplateFile {
  readonly logicalId: string;
  /** Relative to the cloud assembly's directory (`NestedStack.templateFile`). */
  readonly file: string;
}

/**
 * Replaces, in a nested template's value, each `Ref` to one of its parameters by what the parent
 * passes for it (CDK passes every reference to a parent resource as a parameter).
 */
function substitute(value: Json, parameters: Readonly<Record<string, Json>>, where: string): Json {
  if (Array.isArray(value)) return value.map((item) => substitute(item, parameters, where));
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[fn, args]] = entries as [[string, Json]];
    if (fn === "Ref" && typeof args === "string" && args in parameters)
      return structuredClone(parameters[args]);
    if (fn === "Fn::Sub") {
      const variables = [...JSON.stringify(args).matchAll(/\$\{([^}!.]+)/g)].map((m) => m[1]!);
      const parameter = variables.find((name) => name in parameters);
      if (parameter) throw new Error(`${where}: Fn::Sub of its parameter ${parameter} is not flattened`);
    }
  }
  return Object.fromEntries(entries.map(([key, item]) => [key, substitute(item, parameters, where)]));
}

/**
 * The deployment as one template: the parent's resources and outputs plus every nested stack's,
 * with the nested stacks' parameters replaced by what the parent passes, and the parent's
 * `Fn::GetAtt [<nested>, Outputs.X]` by the nested output's value. The sandbox's stand-ins read
 * it exactly as they read a single stack (IAM, state machines, parameters, the bucket's rules);
 * logical ids are unique across the stacks (a cluster's resources carry its name), which this
 * checks.
 */
export function flattenNestedStacks(
  parent: FullTemplate,
  nested: readonly NestedTemplateFile[],
  assemblyDir: string,
): FullTemplate {
  const resources: FullTemplate["Resources"] = {};
  const outputs: NonNullable<FullTemplate["Outputs"]> = { ...(parent.Outputs ?? {}) };
  const nestedOutputs = new Map<string, Record<string, Json>>();
  const nestedIds = new Set(nested.map((n) => n.logicalId));
  for (const [id, resource] of Object.entries(parent.Resources)) {
    if (!nestedIds.has(id)) resources[id] = resource;
  }
  for (const { logicalId, file } of nested) {
    const stackResource = parent.Resources[logicalId];
    if (stackResource?.Type !== "AWS::CloudFormation::Stack") {
      throw new Error(`${logicalId} is not a nested stack of the parent template`);
    }
    const template = JSON.parse(readFileSync(path.join(assemblyDir, file), "utf8")) as FullTemplate;
    const passed = (stackResource.Properties?.Parameters ?? {}) as Record<string, Json>;
    const where = `nested stack ${logicalId}`;
    for (const [id, resource] of Object.entries(template.Resources)) {
      if (id in resources) throw new Error(`${where}: logical id ${id} is also in another stack`);
      resources[id] = substitute(resource, passed, where) as FullTemplate["Resources"][string];
    }
    const values: Record<string, Json> = {};
    for (const [name, output] of Object.entries(template.Outputs ?? {})) {
      const value = substitute(output.Value, passed, where);
      values[name] = value;
      outputs[name] = { ...output, Value: value };
    }
    nestedOutputs.set(logicalId, values);
  }
  // The parent's references to nested outputs.
  const resolveOutputs = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(resolveOutputs);
    if (typeof value !== "object" || value === null) return value;
    const getAtt = (value as { "Fn::GetAtt"?: [string, string] })["Fn::GetAtt"];
    if (getAtt && nestedOutputs.has(getAtt[0]) && getAtt[1].startsWith("Outputs.")) {
      const found = nestedOutputs.get(getAtt[0])![getAtt[1].slice("Outputs.".length)];
      if (found === undefined) throw new Error(`no output ${getAtt[1]} in nested stack ${getAtt[0]}`);
      return structuredClone(found);
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveOutputs(item)]));
  };
  const flat = resolveOutputs({ ...parent, Resources: resources, Outputs: outputs }) as FullTemplate;
  // DependsOn naming a nested stack: it is now its resources, created with the parent's.
  for (const resource of Object.values(flat.Resources) as { DependsOn?: string | string[] }[]) {
    if (resource.DependsOn === undefined) continue;
    const list = (Array.isArray(resource.DependsOn) ? resource.DependsOn : [resource.DependsOn]).filter(
      (id) => !nestedIds.has(id),
    );
    if (list.length === 0) delete resource.DependsOn;
    else resource.DependsOn = list;
  }
  return flat;
}

/** The nested stacks of a synthesized Rewind stack (its clusters' stacks), for flattenNestedStacks. */
export function nestedTemplateFiles(stack: RewindStack): NestedTemplateFile[] {
  return stack.clusters.stacks.map((nestedStack) => ({
    logicalId: stack.resolve(nestedStack.nestedStackResource!.logicalId) as string,
    file: nestedStack.templateFile,
  }));
}

/** `app.synth()` of a Rewind stack as one template (flattenNestedStacks). */
export function deploymentTemplate(stack: RewindStack, assembly: CloudAssembly): FullTemplate {
  const artifact = assembly.getStackByName(stack.stackName);
  return flattenNestedStacks(
    artifact.template as FullTemplate,
    nestedTemplateFiles(stack),
    assembly.directory,
  );
}

/**
 * The same template with every resource's logical id prefixed (`Staging` + id) and every
 * reference rewritten, so two deployments' templates can share the sandbox's stand-ins: the
 * stand-ins make ARNs from logical ids, and two synths of the app have the same ones.
 */
export function prefixLogicalIds(template: FullTemplate, prefix: string): FullTemplate {
  const ids = new Set(Object.keys(template.Resources));
  const renamed = (id: string) => (ids.has(id) ? `${prefix}${id}` : id);
  const rewrite = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (typeof value !== "object" || value === null) return value;
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [[fn, args]] = entries as [[string, Json]];
      if (fn === "Ref" && typeof args === "string") return { Ref: renamed(args) };
      if (fn === "Fn::GetAtt") {
        const [id, ...rest] = typeof args === "string" ? args.split(".") : (args as string[]);
        return { "Fn::GetAtt": [renamed(id!), rest.join(".")] };
      }
      if (fn === "Fn::Sub") {
        const sub = (text: string) =>
          text.replace(
            /\$\{([^}!.]+)(\.[^}]*)?\}/g,
            (_, id: string, attr = "") => `\${${renamed(id)}${attr}}`,
          );
        return {
          "Fn::Sub":
            typeof args === "string"
              ? sub(args)
              : [sub((args as [string, Json])[0]), rewrite((args as [string, Json])[1])],
        };
      }
    }
    return Object.fromEntries(entries.map(([key, item]) => [key, rewrite(item)]));
  };
  const resources: FullTemplate["Resources"] = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    const copy = rewrite(resource) as FullTemplate["Resources"][string] & { DependsOn?: string | string[] };
    if (copy.DependsOn !== undefined)
      copy.DependsOn = (Array.isArray(copy.DependsOn) ? copy.DependsOn : [copy.DependsOn]).map(renamed);
    resources[renamed(id)] = copy;
  }
  return {
    ...template,
    Resources: resources,
    Outputs: rewrite(template.Outputs ?? {}) as FullTemplate["Outputs"],
  };
}
