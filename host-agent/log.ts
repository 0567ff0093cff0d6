/**
 * Logs and progress go to stderr as JSON lines; stdout is reserved for the one JSON result.
 * Never pass a password here.
 */
type Level = "debug" | "info" | "warn" | "error";

export function log(level: Level, message: string, fields: Record<string, unknown> = {}): void {
  if (level === "debug" && !process.env.REWIND_DEBUG) return;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields })}\n`);
}

/** A one-line progress display when stderr is a terminal, a log line every 10 s otherwise. */
export class Progress {
  private lastLog = 0;
  private readonly started = Date.now();

  constructor(private readonly label: string) {}

  update(bytes: number): void {
    const now = Date.now();
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = bytes / seconds / 1024 / 1024;
    if (process.stderr.isTTY) {
      process.stderr.write(
        `\r${this.label}: ${(bytes / 1024 / 1024).toFixed(0)} MiB, ${rate.toFixed(1)} MiB/s   `,
      );
    } else if (now - this.lastLog > 10_000) {
      this.lastLog = now;
      log("info", `${this.label} progress`, { bytes, mibPerSecond: Number(rate.toFixed(1)) });
    }
  }

  done(): void {
    if (process.stderr.isTTY) process.stderr.write("\n");
  }
}
