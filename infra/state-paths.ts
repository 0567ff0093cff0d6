import type { AgentStatus } from "../core/agent-output.js";
import type { BackupInput, RestoreInput, VerifyInput } from "../core/contracts/state-machine-inputs.js";
import type { PlannedRestore } from "../core/store/planned-restore.js";
import type { BackupResult } from "../host-agent/commands/backup.js";
import type { BinlogPushResult } from "../host-agent/commands/binlog-push.js";
import type { RestoreResult } from "../host-agent/restore/restore.js";
import type { SelectedSource } from "../lambdas/lib/select-source.js";
import type { VerifyReport } from "../lambdas/lib/verify-backup.js";

/**
 * The state machines' JSONPaths, derived from the typed shapes of what each state holds: the
 * Lambdas' outputs, the agent's results, the operators' inputs. A path that names no field of
 * the state, or hands a Lambda a field of the wrong type, fails `tsc`; the contract tests
 * (test/infra/state-paths.test.ts) check that every path in the synthesized template is one of these.
 */

type Leaf = string | number | boolean | bigint | symbol | null | undefined;
type Prev = [never, 0, 1, 2, 3, 4, 5];

/** Every dotted path into T (objects only; arrays are leaves), to a depth of 6. */
export type PathOf<T, D extends number = 6> = [D] extends [never]
  ? never
  : NonNullable<T> extends Leaf | readonly unknown[]
    ? never
    : {
        [K in keyof NonNullable<T> & string]:
          | K
          | (NonNullable<NonNullable<T>[K]> extends Leaf | readonly unknown[]
              ? never
              : `${K}.${PathOf<NonNullable<T>[K], Prev[D]>}`);
      }[keyof NonNullable<T> & string];

/** The type at a dotted path of T. */
export type PathValue<T, P extends string> = P extends `${infer K}.${infer Rest}`
  ? K extends keyof NonNullable<T>
    ? PathValue<NonNullable<T>[K], Rest>
    : never
  : P extends keyof NonNullable<T>
    ? NonNullable<T>[P]
    : never;

/** The paths of S whose value fits V. */
type PathsTo<S, V> = { [P in PathOf<S>]: NonNullable<PathValue<S, P>> extends V ? P : never }[PathOf<S>];

/** The execution state of Rewind-Backup: SelectSource's output, then each step's result. */
export type BackupState = SelectedSource & { backup: BackupResult; verify: VerifyReport };

/** Rewind-Restore: the operator's input, then PlanRestore's plan, Verify's report, the agent's results. */
export type RestoreState = RestoreInput & {
  plan: PlannedRestore;
  verify: VerifyReport;
  restore: RestoreResult;
  health: AgentStatus;
  error: { Error: string; Cause: string };
};

/** Rewind-RestoreDrill: `{cluster}`, the chosen source, the plan, the report, the restore. */
export type DrillState = Pick<BackupInput, "cluster"> & {
  selected: SelectedSource;
  plan: PlannedRestore;
  verify: VerifyReport;
  restore: RestoreResult;
};

/** What every state machine's failure tail adds. */
export type FailureState = {
  error: { Error: string; Cause: string };
  notified: unknown;
  notifyError: unknown;
};

/**
 * The watchdog's result line in the agent's log group, which the metric filters read:
 * `{"ok":true,"command":"binlog-push","cluster":…,"result":{…}}`.
 */
export type WatchdogLine = { ok: true; command: "binlog-push"; cluster: string; result: BinlogPushResult };

/** A JSONPath into state S: `$.a.b`, checked against S's type. */
export function statePath<S>() {
  return <P extends PathOf<S>>(path: P): `$.${P}` => `$.${path}`;
}

/**
 * A task's parameters taken from the state by path, as `{"field.$": "$.path"}`: the fields are
 * those of the task's input I, each from a path of S whose type fits.
 */
export function fromState<S, I>(fields: { [K in keyof I & string]?: PathsTo<S, NonNullable<I[K]>> }) {
  return Object.fromEntries(
    Object.entries(fields).map(([field, path]) => [`${field}.$`, `$.${String(path)}`]),
  ) as Record<string, string>;
}

export type { BackupInput, RestoreInput, VerifyInput };
