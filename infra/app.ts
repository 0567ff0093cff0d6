/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Synth works offline: no credentials, no
 * Docker (esbuild bundles the agent), no lookups.
 */
import { App } from "aws-cdk-lib";
import { bundleAgent } from "./bundle-agent.js";
import { loadRewindConfig } from "./config.js";
import { RewindStack } from "./rewind-stack.js";

const app = new App();
const configFile = app.node.tryGetContext("rewindConfig") ?? "rewind.config.json";
const config = loadRewindConfig(configFile);
new RewindStack(app, "Rewind", { config, agentBundle: await bundleAgent() });
app.synth();
