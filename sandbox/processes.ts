import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; rejects with its stderr tail when it exits non-zero. */
export async function run(
  command: string,
  args: readonly string[],
  options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on("error", () => {});
  child.stdin.end(options.input ?? "");
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  const result = { stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() };
  if (code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited with ${signal ?? code}: ${result.stderr.trim().slice(-2000)}`,
    );
  }
  return result;
}

/** The one free-port helper: the agent's (its private servers need one too). */
export { freeLoopbackPort as freePort } from "../host-agent/net.js";

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  { timeoutMs = 60_000, intervalMs = 100 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const living = new Set<ChildProcess>();

/** Children that must not outlive this process, even when a test fails or the demo is interrupted. */
export function track(child: ChildProcess): ChildProcess {
  living.add(child);
  child.once("exit", () => living.delete(child));
  return child;
}

process.once("exit", () => {
  for (const child of living) child.kill("SIGKILL");
});
