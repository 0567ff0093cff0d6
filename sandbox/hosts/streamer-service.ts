import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { openSync } from "node:fs";
import path from "node:path";
import { withoutRegion } from "../aws/ssm.js";
import { track } from "../processes.js";

/**
 * What systemd does on a database host for `rewind-binlog-stream.service` (rewind-agent install):
 * runs `binlog-stream` with the host's credentials and restarts it two seconds after any exit
 * (Restart=always, RestartSec=2). Its log goes to `<host dir>/binlog-stream.log`.
 */
export class StreamerService {
  private child?: ChildProcess;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  restarts = 0;

  constructor(
    private readonly agentBundle: string,
    private readonly configFile: string,
    private readonly hostDir: string,
    private readonly environment: Readonly<Record<string, string>>,
  ) {}

  get logFile(): string {
    return path.join(this.hostDir, "binlog-stream.log");
  }

  start(): void {
    this.stopped = false;
    const log = openSync(this.logFile, "a");
    const child = track(
      spawn(process.execPath, [this.agentBundle, "binlog-stream", "--config", this.configFile], {
        stdio: ["ignore", log, log],
        // As its systemd unit runs it: no region in the environment.
        env: { ...withoutRegion(process.env), ...this.environment },
      }),
    );
    this.child = child;
    child.once("exit", () => {
      if (this.stopped) return;
      this.restarts++;
      this.timer = setTimeout(() => this.start(), 2000);
    });
  }

  /** `kill -9` of the streamer alone: the service restarts it, as systemd would. */
  async crash(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }

  /** `systemctl stop` (signal "SIGTERM") or the host lost with it ("SIGKILL"): not restarted. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  }
}
