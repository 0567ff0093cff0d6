import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { App } from "aws-cdk-lib";
import { deploymentNames } from "../core/contracts/deployment.js";
import { parseRewindConfig } from "./config.js";
import { RewindStack } from "./rewind-stack.js";

/** CloudFormation's quotas a template must stay under ("CloudFormation quotas", User Guide). */
export const CLOUDFORMATION_LIMITS = {
  resources: 500,
  /** A template uploaded to S3 (as `cdk deploy` does for the parent and every nested stack). */
  bytes: 1_000_000,
  parameters: 200,
  outputs: 200,
} as const;

export interface TemplateSize {
  readonly name: string;
  readonly resources: number;
  readonly bytes: number;
  readonly parameters: number;
  readonly outputs: number;
  /** The template's JSON, as written. */
  readonly json: string;
}

export interface FleetSynth {
  readonly clusters: number;
  readonly seconds: number;
  readonly parent: TemplateSize;
  readonly nested: readonly TemplateSize[];
}

function sizeOf(name: string, json: string): TemplateSize {
  const template = JSON.parse(json) as Record<string, Record<string, unknown> | undefined>;
  return {
    name,
    resources: Object.keys(template.Resources ?? {}).length,
    bytes: Buffer.byteLength(json),
    parameters: Object.keys(template.Parameters ?? {}).length,
    outputs: Object.keys(template.Outputs ?? {}).length,
    json,
  };
}

/** `fleet-0001` …: names as a platform team's might look (hashing spreads any names alike). */
export function fleetClusterNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `fleet-${String(i + 1).padStart(4, "0")}`);
}

/**
 * `cdk synth` of a deployment with `clusters` clusters (MariaDB, default settings), in-process and
 * offline, into `dir`: how long it took, and the size of the parent and each nested template.
 */
export function synthFleet(
  clusters: number | readonly string[],
  dir: string,
  extra: Record<string, unknown> = {},
): FleetSynth {
  mkdirSync(dir, { recursive: true });
  const agentBundle = path.join(dir, "rewind-agent.mjs");
  writeFileSync(agentBundle, "// agent bundle stand-in for synth\n");
  const names = typeof clusters === "number" ? fleetClusterNames(clusters) : clusters;
  const started = performance.now();
  const config = parseRewindConfig(
    { ...extra, clusters: names.map((name) => ({ name, engine: "mariadb" })) },
    "fleet",
  );
  const app = new App({ outdir: path.join(dir, "cdk.out") });
  const stack = new RewindStack(app, deploymentNames(config.deployment).stack, { config, agentBundle });
  const assembly = app.synth();
  const seconds = (performance.now() - started) / 1000;
  const parentArtifact = assembly.getStackByName(stack.stackName);
  const parent = sizeOf(stack.stackName, readFileSync(parentArtifact.templateFullPath, "utf8"));
  const nested = stack.clusters.stacks.map((nestedStack) =>
    sizeOf(
      nestedStack.node.id,
      readFileSync(path.join(assembly.directory, nestedStack.templateFile), "utf8"),
    ),
  );
  return { clusters: names.length, seconds, parent, nested };
}

/** Every template of a synth that passes a CloudFormation quota, as sentences (empty when none). */
export function quotaProblems(fleet: FleetSynth): string[] {
  const problems: string[] = [];
  for (const template of [fleet.parent, ...fleet.nested]) {
    for (const [quota, limit] of Object.entries(CLOUDFORMATION_LIMITS)) {
      const value = template[quota as keyof typeof CLOUDFORMATION_LIMITS];
      if (value > limit) problems.push(`${template.name}: ${value} ${quota}, over CloudFormation's ${limit}`);
    }
  }
  return problems;
}
