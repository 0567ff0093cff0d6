import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AGENT_BUNDLE } from "../infra/bundle-agent.js";
import { type AgentRun, runAgent } from "../sandbox/hosts/agent.js";

export const BUCKET = "rewind-test";

export function scratchDir(name: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `rewind-${name}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function agent(args: readonly string[], env?: NodeJS.ProcessEnv, input?: string) {
  return runAgent(AGENT_BUNDLE, args, env, input);
}

/**
 * `rewind-agent install --no-start`, as the association runs it, with the systemd unit and the
 * installed bundle under `dir` instead of /etc/systemd/system and /opt/rewind.
 */
export function installAgent(
  dir: string,
  configFile: string,
  { env, noAccounts = false }: { env?: NodeJS.ProcessEnv; noAccounts?: boolean } = {},
) {
  return agent(
    [
      "install",
      "--no-start",
      ...(noAccounts ? ["--no-accounts"] : []),
      "--unit-dir",
      `${dir}/systemd`,
      "--install-dir",
      `${dir}/opt`,
      "--config",
      configFile,
    ],
    env,
  );
}

/** The backup id of a successful `backup` run; fails with the agent's stderr otherwise. */
export function backupIdOf(run: AgentRun): string {
  const backupId = run.output?.result?.backupId;
  if (run.exitCode !== 0 || typeof backupId !== "string") {
    throw new Error(`the backup failed (exit ${run.exitCode}): ${run.stderr.slice(-3000)}`);
  }
  return backupId;
}
