import { bundleAgent } from "../infra/bundle-agent.js";

/** Tests run the agent as hosts do: the bundled single file under plain node. */
export default async function setup(): Promise<void> {
  await bundleAgent();
}
