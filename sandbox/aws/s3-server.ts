import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, track } from "../processes.js";
import type { S3Fault, S3GateRules } from "./s3-gate.js";
import type { LifecycleOutcome, StorageSummary } from "./s3-versions.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsxLoader = createRequire(import.meta.url).resolve("tsx");

export interface S3ServerOptions {
  /** Where objects are stored as files. */
  readonly storageDir: string;
  readonly buckets: readonly string[];
  readonly port?: number;
  /** What the gate in front of fauxqs enforces; without it, it only counts requests. */
  readonly rules?: S3GateRules;
  /** Where the gate's denials are printed (principal, action, resource); stderr by default. */
  readonly log?: (line: string) => void;
}

/** The S3 stand-in (fauxqs in file mode behind the S3 gate) in a child process of its own. */
export class S3Server {
  private constructor(
    private child: ChildProcess,
    readonly endpoint: string,
    readonly port: number,
    private readonly options: S3ServerOptions,
  ) {}

  static async start(options: S3ServerOptions): Promise<S3Server> {
    const port = options.port ?? (await freePort());
    const child = await S3Server.spawn(port, options);
    return new S3Server(child, `http://127.0.0.1:${port}`, port, options);
  }

  private static async spawn(port: number, options: S3ServerOptions): Promise<ChildProcess> {
    mkdirSync(options.storageDir, { recursive: true });
    let rulesFile = "-";
    if (options.rules) {
      rulesFile = path.join(options.storageDir, "gate-rules.json");
      writeFileSync(rulesFile, JSON.stringify(options.rules));
    }
    const child = track(
      spawn(
        process.execPath,
        [
          "--import",
          tsxLoader,
          path.join(here, "s3-process.ts"),
          String(port),
          options.storageDir,
          rulesFile,
          ...options.buckets,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    let stderr = "";
    const log = options.log ?? ((line: string) => console.error(line));
    child.stderr!.on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      stderr = (stderr + text).slice(-4000);
      for (const line of text.split("\n")) if (line.startsWith("sandbox IAM:")) log(line);
    });
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) =>
        reject(new Error(`the S3 stand-in exited with ${code} while starting: ${stderr}`)),
      );
    });
    await ready;
    return child;
  }

  /** Answers matching requests with an S3 error until replaced (`[]` clears them): see S3Fault. */
  async injectFaults(faults: readonly S3Fault[]): Promise<void> {
    const response = await fetch(`${this.endpoint}/__sandbox/faults`, {
      method: "POST",
      body: JSON.stringify(faults),
    });
    if (response.status !== 204) throw new Error(`the S3 stand-in refused the faults: ${response.status}`);
  }

  /**
   * Moves the stand-in's clock ahead (Object Lock and lifecycle see that much more time gone) and
   * applies the bucket's lifecycle rules as of then: what they removed.
   */
  async advanceClock(seconds: number): Promise<{ now: string; lifecycle: LifecycleOutcome | null }> {
    const response = await fetch(`${this.endpoint}/__sandbox/clock`, {
      method: "POST",
      body: JSON.stringify({ advanceSeconds: seconds }),
    });
    return (await response.json()) as { now: string; lifecycle: LifecycleOutcome | null };
  }

  /** What the bucket keeps under `prefix` (of keys ending with `suffix`), every version and delete marker counted. */
  async storage(bucket: string, prefix = "", suffix = ""): Promise<StorageSummary> {
    const query = new URLSearchParams({ bucket, prefix, suffix });
    const response = await fetch(`${this.endpoint}/__sandbox/storage?${query}`);
    return (await response.json()) as StorageSummary;
  }

  /** Kills the server at once, as a network failure would look to a client. */
  kill(): void {
    this.child.kill("SIGKILL");
  }

  /** Starts it again on the same port and storage directory. */
  async restart(): Promise<void> {
    await this.stop();
    this.child = await S3Server.spawn(this.port, this.options);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.kill("SIGTERM");
    await exited;
  }

  /** Requests answered since the start (or the last reset), by API: `S3 PutObject` → n. */
  async requestCounts({ reset = false } = {}): Promise<Record<string, number>> {
    const response = await fetch(`${this.endpoint}/__sandbox/counts${reset ? "?reset" : ""}`);
    return (await response.json()) as Record<string, number>;
  }

  objectPath(bucket: string, key: string): string {
    return path.join(this.options.storageDir, "buckets", bucket, "objects", `${key}.data`);
  }
}
