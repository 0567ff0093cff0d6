import { writeFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { deploymentNames } from "../../core/contracts/deployment.js";
import { parseRewindConfig } from "../../infra/config.js";
import { RewindStack } from "../../infra/rewind-stack.js";
import { deploymentTemplate } from "../../sandbox/nested-templates.js";
import { scratchDir } from "../support.js";

const scratch = scratchDir("infra");
const agentBundle = `${scratch.dir}/rewind-agent.mjs`;
writeFileSync(agentBundle, "// agent bundle stand-in for template tests\n");

export const MINIMAL_CONFIG = { clusters: [{ name: "orders", engine: "mariadb" }] };

/** A fresh stack from a raw config, as `cdk synth` would build it (Lambdas bundled by local esbuild). */
export function synthStack(raw: unknown = MINIMAL_CONFIG, app = new App()): RewindStack {
  const config = parseRewindConfig(raw, "test");
  return new RewindStack(app, deploymentNames(config.deployment).stack, { config, agentBundle });
}

/** Each config is synthesized once per test file (bundling six Lambdas each time is the cost). */
const synthesized = new Map<string, Record<string, unknown>>();

/** The template of a config, as `cdk synth` writes it; a fresh copy each call, so a test may edit it. */
export function synthTemplate(raw: unknown = MINIMAL_CONFIG): Template {
  const key = JSON.stringify(raw);
  let json = synthesized.get(key);
  if (!json) {
    // The parent with its clusters' nested stacks, as one template.
    const app = new App();
    const stack = synthStack(raw, app);
    json = deploymentTemplate(stack, app.synth()) as Record<string, unknown>;
    synthesized.set(key, json);
  }
  return Template.fromJSON(structuredClone(json));
}

export function removeSynthScratch(): void {
  scratch.remove();
}
