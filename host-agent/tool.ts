import { type ChildProcess, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";

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

export interface ToolProcess {
  readonly child: ChildProcess;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: StderrTail;
  /**
   * Settles when the process has ended and its output streams are closed: rejects naming the tool,
   * how it ended and the tail of its stderr, or what `check` found wrong in a zero exit.
   */
  readonly exited: Promise<void>;
  /** SIGTERM, unless it has already ended. */
  stop(): void;
}

/**
 * Spawns one stage of a pipeline (a backup tool, zstd, mbstream, mysqlbinlog, a client) with its
 * stdio piped, keeping its stderr tail for the error that names it. Passwords never travel in
 * `args`: callers pass a defaults file.
 */
export function startTool(
  command: string,
  args: readonly string[],
  options: {
    /** Also gets every stderr chunk (the backup tool's log file). */
    readonly onStderr?: (chunk: Buffer) => void;
    /** A problem with an exit code 0, such as a missing "completed OK!". */
    readonly check?: (stderr: StderrTail) => string | undefined;
    readonly stderrLimit?: number;
  } = {},
): ToolProcess {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const stderr = new StderrTail(options.stderrLimit);
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr.push(chunk);
    options.onStderr?.(chunk);
  });
  // A stage that exits early closes its stdin; the writer's EPIPE is reported by `exited`.
  child.stdin!.on("error", () => {});
  const exited = new Promise<void>((resolve, reject) => {
    child.once("error", (error) =>
      reject(new Error(`cannot run ${command}: ${error.message}; is it installed and on PATH?`)),
    );
    child.once("close", (code, signal) => {
      const problem =
        code !== 0
          ? `${command} ${signal ? `was killed by ${signal}` : `exited with ${code}`}`
          : options.check?.(stderr);
      if (problem) reject(new Error(`${problem}: ${stderr.toString().slice(-1500) || "(no output)"}`));
      else resolve();
    });
  });
  return {
    child,
    stdin: child.stdin!,
    stdout: child.stdout!,
    stderr,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    },
  };
}

/** Runs a tool to completion and returns its output; rejects with the stderr tail. */
export async function runTool(
  command: string,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  const tool = startTool(command, args, { stderrLimit: 16_000 });
  const stdout: Buffer[] = [];
  tool.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  tool.stdin.end(options.input ?? "");
  await tool.exited;
  return { stdout: Buffer.concat(stdout).toString(), stderr: tool.stderr.toString() };
}
