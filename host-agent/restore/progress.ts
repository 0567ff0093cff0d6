import type {
  PhaseProgress,
  RestorePhase,
  RestoreProgressRecord,
} from "../../core/contracts/restore-progress.js";
import { log } from "../log.js";

export interface RestoreProgressOptions {
  readonly restoreId: string | undefined;
  readonly host: string;
  readonly kind: RestoreProgressRecord["kind"];
  /** Stores the record (restores/<id>/progress.json); a failure is logged, never fatal. */
  readonly sink?: (record: RestoreProgressRecord) => Promise<void>;
  /** At most one write this often, besides each phase's start and end (default 3 s). */
  readonly writeEveryMs?: number;
  /** A log line this often while a phase runs (default 10 s): SSM sends them to CloudWatch. */
  readonly logEveryMs?: number;
  readonly now?: () => number;
}

/**
 * Where a restore is: its phase, how much of it is done of how much, and the time the phase
 * still needs at its rate so far. Told by the restore's steps (`begin`, `advance`, `end`); logs
 * a line at each phase's start and end and every `logEveryMs` between, and rewrites the record
 * through `sink` at most every `writeEveryMs`. `phases()` gives each one's duration for the report.
 */
export class RestoreProgress {
  private readonly done: PhaseProgress[] = [];
  private current: { record: PhaseProgress; startedMs: number } | undefined;
  private state: RestoreProgressRecord["state"] = "running";
  private readonly startedAt: string;
  private lastWrite = 0;
  private lastLog = 0;
  private writing: Promise<void> = Promise.resolve();
  private inFlight = false;
  private sinkFailed = false;
  private readonly now: () => number;

  constructor(private readonly options: RestoreProgressOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = new Date(this.now()).toISOString();
  }

  /** Starts `phase` (ending the one before); `total` is null when it cannot be known ahead. */
  begin(phase: RestorePhase, unit: PhaseProgress["unit"], total: number | null): void {
    this.closeCurrent();
    const now = this.now();
    this.current = {
      record: { phase, unit, done: 0, total, startedAt: new Date(now).toISOString(), seconds: null },
      startedMs: now,
    };
    this.lastLog = now;
    log("info", `restore: ${phase} started`, { unit, total });
    this.write(true);
  }

  /** How much of the running phase is done (not an increment). */
  advance(done: number): void {
    if (!this.current) return;
    this.current.record = { ...this.current.record, done };
    const now = this.now();
    if (now - this.lastLog >= (this.options.logEveryMs ?? 10_000)) {
      this.lastLog = now;
      const { percent, etaSeconds } = this.estimate();
      const { phase, unit, total } = this.current.record;
      log(
        "info",
        `restore: ${phase} ${percent === null ? `${done} ${unit}` : `${percent.toFixed(1)}%`}${etaSeconds === null ? "" : `, about ${Math.ceil(etaSeconds)} s left`}`,
        { phase, done, total, unit, etaSeconds },
      );
    }
    this.write(false);
  }

  /** Ends the running phase. */
  end(): void {
    this.closeCurrent();
    this.write(true);
  }

  /** Ends the restore: the last phase closed and the final record written (awaited). */
  async finish(ok: boolean): Promise<void> {
    this.closeCurrent(ok);
    this.state = ok ? "succeeded" : "failed";
    this.write(true);
    await this.writing;
  }

  /** Each phase that ran, in order, with how long it took. */
  phases(): PhaseProgress[] {
    return [...this.done, ...(this.current ? [this.current.record] : [])];
  }

  record(): RestoreProgressRecord {
    const { percent, etaSeconds } = this.estimate();
    const phases = this.phases();
    return {
      restoreId: this.options.restoreId ?? "",
      host: this.options.host,
      kind: this.options.kind,
      state: this.state,
      startedAt: this.startedAt,
      updatedAt: new Date(this.now()).toISOString(),
      phase: phases.at(-1)?.phase ?? null,
      percent: this.current ? percent : phases.length > 0 ? 100 : null,
      etaSeconds: this.current ? etaSeconds : phases.length > 0 ? 0 : null,
      phases,
    };
  }

  private estimate(): { percent: number | null; etaSeconds: number | null } {
    if (!this.current) return { percent: null, etaSeconds: null };
    const { done, total } = this.current.record;
    if (total === null) return { percent: null, etaSeconds: null };
    if (total === 0) return { percent: 100, etaSeconds: 0 };
    const share = Math.min(done / total, 1);
    const elapsed = (this.now() - this.current.startedMs) / 1000;
    return {
      percent: Math.round(share * 1000) / 10,
      etaSeconds: share > 0 ? Math.round((elapsed / share - elapsed) * 10) / 10 : null,
    };
  }

  private closeCurrent(completed = true): void {
    if (!this.current) return;
    const seconds = Math.round((this.now() - this.current.startedMs) / 100) / 10;
    const { record } = this.current;
    // A phase that completes has done all it had to, whatever the last report said.
    const ended = { ...record, done: completed ? (record.total ?? record.done) : record.done, seconds };
    this.done.push(ended);
    log("info", `restore: ${record.phase} done in ${seconds} s`, { phase: record.phase, done: ended.done });
    this.current = undefined;
  }

  /** Writes now when forced (a phase boundary), else only when none did for `writeEveryMs`. */
  private write(force: boolean): void {
    const { sink, restoreId } = this.options;
    if (!sink || !restoreId) return;
    const now = this.now();
    if (!force && (this.inFlight || now - this.lastWrite < (this.options.writeEveryMs ?? 3000))) return;
    this.lastWrite = now;
    const record = this.record();
    this.inFlight = true;
    this.writing = this.writing
      .then(() => sink(record))
      .catch((error: Error) => {
        if (this.sinkFailed) return;
        this.sinkFailed = true;
        log("warn", "could not write the restore's progress (the restore goes on)", {
          error: error.message,
        });
      })
      .finally(() => {
        this.inFlight = false;
      });
  }
}
