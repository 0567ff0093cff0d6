import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, track } from "./processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const tsxLoader = createRequire(import.meta.url).resolve("tsx");

export interface S3ServerOptions {
  /** Where objects are stored as files. */
  readonly storageDir: string;
  readonly buckets: readonly string[];
  readonly port?: number;
}

/** The S3 stand-in (fauxqs in file mode) in a child process of its own. */
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
    const child = track(
      spawn(
        process.execPath,
        [
          "--import",
          tsxLoader,
          path.join(here, "s3-process.ts"),
          String(port),
          options.storageDir,
          ...options.buckets,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
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

  objectPath(bucket: string, key: string): string {
    return path.join(this.options.storageDir, "buckets", bucket, "objects", `${key}.data`);
  }
}
