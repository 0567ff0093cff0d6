/** One failure of a pipeline stage. */
export interface StageFailure<Stage extends string = string> {
  readonly stage: Stage;
  readonly error: Error;
}

/**
 * Watches the stages of one data path (a tool → zstd → encryption → S3, S3 → decryption → zstd
 * → a client, …) as they run together. The first failure is the cause: it stops every stage at
 * once (`stop` kills the children, drains their outputs, destroys the sinks), so nothing waits on
 * a pipe nobody reads. What fails after that is a consequence of the stop. `failures()` gives the
 * cause first, then the consequences in data-path order (the order `stages` names them).
 *
 * Every pipeline of the agent goes through one of these: the backup stream, decoding a stored
 * stream, binlog replay, storing a binlog, the table copy.
 */
export class PipelineSupervisor<Stage extends string> {
  private readonly recorded: StageFailure<Stage>[] = [];

  constructor(
    private readonly stages: readonly Stage[],
    private readonly stop: (cause: StageFailure<Stage>) => void,
  ) {}

  /** Records a failure of `stage`; the first one stops the pipeline. */
  fail(stage: Stage, error: unknown): void {
    const failure = { stage, error: error instanceof Error ? error : new Error(String(error)) };
    this.recorded.push(failure);
    if (this.recorded.length === 1) this.stop(failure);
  }

  /** Settles when `work` does; its rejection is a failure of `stage`. */
  watch(stage: Stage, work: Promise<unknown>): Promise<void> {
    return work.then(
      () => undefined,
      (error) => this.fail(stage, error),
    );
  }

  /** Waits for every stage's work, each a failure of its stage if it rejects. */
  async run(work: readonly (readonly [Stage, Promise<unknown>])[]): Promise<void> {
    await Promise.all(work.map(([stage, promise]) => this.watch(stage, promise)));
  }

  /** The first failure, or undefined when every stage succeeded. */
  cause(): StageFailure<Stage> | undefined {
    return this.recorded[0];
  }

  /** The cause, then the consequences in data-path order. */
  failures(): StageFailure<Stage>[] {
    const [cause, ...rest] = this.recorded;
    if (!cause) return [];
    const order = (failure: StageFailure<Stage>) => this.stages.indexOf(failure.stage);
    return [cause, ...rest.sort((a, b) => order(a) - order(b))];
  }
}
