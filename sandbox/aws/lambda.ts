import { type ChildProcess, fork } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { track } from "../processes.js";
import type { RequestCounts } from "./request-counts.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsxLoader = createRequire(import.meta.url).resolve("tsx");

type Reply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; name: string; message: string }
  | { ready: true };

/**
 * A Lambda function of the sandbox: the real handler in its own warm process, started on the
 * first invocation with exactly the function's environment, so each function calls the
 * stand-ins with its own role's credentials (as Lambda does) and no two share state.
 */
export class LocalLambda {
  private child?: ChildProcess;
  private ready?: Promise<void>;
  private next = 0;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  private stderr = "";

  constructor(
    readonly name: string,
    private readonly folder: string,
    private readonly environment: Readonly<Record<string, string>>,
    private readonly counts?: RequestCounts,
  ) {}

  private start(): Promise<void> {
    const child = track(
      fork(path.join(here, "lambda-runtime.ts"), [this.folder], {
        execArgv: ["--import", tsxLoader],
        // Nothing of this process's environment: PATH for node, then the function's own.
        env: { PATH: process.env.PATH ?? "", ...this.environment },
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      }),
    );
    this.child = child;
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    const ready = new Promise<void>((resolve, reject) => {
      child.on("message", (reply: Reply) => {
        if ("ready" in reply) return resolve();
        const waiting = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (!waiting) return;
        if (reply.ok) waiting.resolve(reply.result);
        else {
          const error = new Error(reply.message);
          error.name = reply.name;
          waiting.reject(error);
        }
      });
      child.once("exit", (code, signal) => {
        const failure = new Error(
          `Lambda ${this.name} exited (${signal ?? code}): ${this.stderr.trim().split("\n").slice(-5).join(" | ")}`,
        );
        failure.name = "Lambda.ServiceException";
        reject(failure);
        for (const waiting of this.pending.values()) waiting.reject(failure);
        this.pending.clear();
        this.child = undefined;
        this.ready = undefined;
      });
    });
    return ready;
  }

  async invoke(event: unknown): Promise<unknown> {
    this.counts?.add("Lambda", `Invoke ${this.folder}`);
    this.ready ??= this.start();
    await this.ready;
    const id = this.next++;
    const started = performance.now();
    try {
      return await new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.child!.send({ id, event });
      });
    } finally {
      this.counts?.add("Lambda", `ms ${this.folder}`, Math.ceil(performance.now() - started));
    }
  }

  stop(): void {
    this.child?.kill("SIGTERM");
  }
}
