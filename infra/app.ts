/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Synth works offline: no credentials, no
 * Docker (esbuild bundles the agent), no lookups.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { deploymentNames } from "../core/contracts/deployment.js";
import { bundleAgent } from "./bundle-agent.js";
import { loadRewindConfig } from "./config.js";
import { RewindStack } from "./rewind-stack.js";

const app = new App();
// cdk-nag AwsSolutions: any finding not acknowledged (with a reason, on its resource) fails synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
const configFile = app.node.tryGetContext("rewindConfig") ?? "rewind.config.json";
const config = loadRewindConfig(configFile);
new RewindStack(app, deploymentNames(config.deployment).stack, { config, agentBundle: await bundleAgent() });
app.synth();
