import { spawn } from "node:child_process";
import { once } from "node:events";

/** Keeps the last bytes a process wrote to stderr, for error messages. */
export class StderrTail {
  private text = "";
  constructor(private readonly limit = 4000) {}
  push(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.limit);
  }
  toString(): string {
    return this.text.trim();
  }
}

/** Runs a tool to completion and returns its output; rejects with the stderr tail. */
export async function runTool(
  command: string,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  const stderr = new StderrTail(16_000);
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on("error", () => {});
  child.stdin.end(options.input ?? "");
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (error) =>
      reject(new Error(`cannot run ${command}: ${error.message}; is it installed and on PATH?`)),
    ),
  );
  const [code, signal] = (await Promise.race([once(child, "close"), spawnError])) as [
    number | null,
    string | null,
  ];
  if (code !== 0) throw new Error(`${command} exited with ${signal ?? code}: ${stderr}`);
  return { stdout: Buffer.concat(stdout).toString(), stderr: stderr.toString() };
}
