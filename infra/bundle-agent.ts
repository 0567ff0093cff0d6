import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/**
 * Bundles the host agent into one ESM file that runs with plain `node` (18+) on a database host
 * that has no node_modules: `node rewind-agent.mjs <command>`.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const AGENT_BUNDLE = path.join(root, "dist", "rewind-agent.mjs");

export async function bundleAgent(outfile = AGENT_BUNDLE): Promise<string> {
  const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
    version: string;
  };
  await build({
    entryPoints: [path.join(root, "host-agent", "cli.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node18",
    minify: false,
    sourcemap: false,
    legalComments: "none",
    define: { __REWIND_AGENT_VERSION__: JSON.stringify(version) },
    // Some AWS SDK dependencies are CommonJS and call require(); give the ESM bundle one.
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __rewindCreateRequire } from 'node:module';\nconst require = __rewindCreateRequire(import.meta.url);",
    },
    logLevel: "warning",
  });
  return outfile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await bundleAgent(process.argv[2]));
}
