import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { SandboxState } from "../../sandbox/sandbox.js";
import { scratchDir } from "../support.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The `npm run sandbox -- …` lines of the README's hands-on block, as argument lists. */
function readmeSandboxCommands(): string[][] {
  const readme = readFileSync(path.join(repo, "README.md"), "utf8");
  const block = /To try commands by hand[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  return block
    .split("\n")
    .map((line) => /^npm run sandbox -- (.*?)\s*(?:#.*)?$/.exec(line.trim())?.[1])
    .filter((line): line is string => line !== undefined)
    .map((line) => [...line.matchAll(/'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2]!));
}

/**
 * Each sandbox command the README gives, run once as a new user would, in its order: `up` stays
 * in the foreground, the others run against it (status runs the agent with the hosts' own
 * credentials, which the sandbox's IAM checks), and `down` ends it.
 */
describe("the README's sandbox commands", () => {
  const scratch = scratchDir("sandbox-cli");
  const root = path.join(scratch.dir, "sandbox");
  const env = { ...process.env, REWIND_SANDBOX_ROOT: root };
  let upProcess: ChildProcess | undefined;

  const cli = (args: readonly string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", path.join(repo, "sandbox/cli.ts"), ...args], {
        cwd: repo,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once("close", (code) => resolve({ code, stdout, stderr }));
    });

  afterAll(async () => {
    if (upProcess && upProcess.exitCode === null) await cli(["down"]);
    scratch.remove();
  });

  it("up, schedule a backup, ship binlogs, restore the standby to latest, status, down: each works", async () => {
    const commands = readmeSandboxCommands();
    expect(commands.map((args) => args[0])).toEqual([
      "up",
      "schedule",
      "schedule",
      "start",
      "status",
      "down",
    ]);
    const [up, ...rest] = commands;

    // `up` on small data (its documented --size-mb), kept in the foreground.
    upProcess = spawn(
      process.execPath,
      ["--import", "tsx", path.join(repo, "sandbox/cli.ts"), ...up!, "--size-mb", "8"],
      { cwd: repo, env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let upOutput = "";
    await new Promise<void>((resolve, reject) => {
      upProcess!.stdout!.on("data", (chunk: Buffer) => {
        upOutput += chunk.toString();
        if (upOutput.includes("Rewind sandbox is up")) resolve();
      });
      upProcess!.stderr!.on("data", (chunk: Buffer) => {
        upOutput += chunk.toString();
      });
      upProcess!.once("exit", (code) =>
        reject(new Error(`up exited with ${code}: ${upOutput.slice(-3000)}`)),
      );
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const state = JSON.parse(readFileSync(path.join(root, "sandbox.json"), "utf8")) as SandboxState;

    for (const args of rest) {
      // The README leaves the standby's datadir to fill in: `up` prints it.
      const filled = args.map((arg) => {
        if (!arg.startsWith("{")) return arg;
        const input = JSON.parse(arg) as Record<string, unknown>;
        const host = state.hosts.find((each) => each.instanceId === input.targetInstanceId);
        expect(host, `the README's targetInstanceId ${String(input.targetInstanceId)}`).toBeDefined();
        expect(upOutput).toContain(host!.datadir);
        return JSON.stringify({ ...input, datadir: host!.datadir });
      });
      const run = await cli(filled);
      const what = `npm run sandbox -- ${args.join(" ")}:\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`;
      expect(run.code, what).toBe(0);
      expect(`${run.stdout}${run.stderr}`, what).not.toMatch(/"level":"error"|✘|AccessDenied|may not/);
      if (args[0] === "schedule" || args[0] === "start")
        expect(run.stdout, what).toMatch(/SUCCEEDED|Success/);
      if (args[0] === "status") {
        expect(run.stdout, what).toContain("RESTORABLE WINDOW");
        expect(run.stdout, what).toMatch(/BACKUPS\n.*\n\s+\S+\s+full/);
        for (const host of state.hosts)
          expect(run.stdout, what).toMatch(new RegExp(`${host.instanceId} .*GTID`));
      }
      if (args[0] === "down") expect(run.stdout, what).toContain("the sandbox is down");
    }
    await new Promise((resolve) =>
      upProcess!.exitCode !== null ? resolve(null) : upProcess!.once("exit", resolve),
    );
  }, 600_000);
});
