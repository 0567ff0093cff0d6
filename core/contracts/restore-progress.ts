import { z } from "zod";

/**
 * The phases of a restore, in the order they run: the binlogs fetched, the backup downloaded,
 * decrypted and extracted (one stream), prepared (the redo log applied), the binlogs replayed,
 * then a drill's table check or a table restore's copy into the live server.
 */
export const RESTORE_PHASES = ["download", "extract", "prepare", "replay", "check", "copy"] as const;
export type RestorePhase = (typeof RESTORE_PHASES)[number];

export const PhaseProgressSchema = z.object({
  phase: z.enum(RESTORE_PHASES),
  /** What done and total count: bytes, or tables for the check. */
  unit: z.enum(["bytes", "tables"]),
  done: z.number().nonnegative(),
  /** Null when it cannot be known ahead (the prepare: the tool reports none). */
  total: z.number().nonnegative().nullable(),
  startedAt: z.string(),
  /** Set once the phase ended. */
  seconds: z.number().nonnegative().nullable(),
});
export type PhaseProgress = z.infer<typeof PhaseProgressSchema>;

/**
 * `restores/<restoreId>/progress.json` (core/layout.ts `restoreProgressKey`): rewritten by the
 * agent at most every few seconds and at each phase's start and end, so an operator (or
 * `rewind-agent list`, `npm run sandbox -- status`) sees where a restore is and how long it has
 * left. `report.json` carries the same phases once it ends.
 */
export const RestoreProgressSchema = z.object({
  restoreId: z.string(),
  host: z.string(),
  /** `whole` (the host's server), `scratch` (a drill), `tables`. */
  kind: z.enum(["whole", "scratch", "tables"]),
  state: z.enum(["running", "succeeded", "failed"]),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** The phase running now (the last one, once ended). */
  phase: z.enum(RESTORE_PHASES).nullable(),
  /** The running phase's share done, 0–100; null when its total is unknown. */
  percent: z.number().min(0).max(100).nullable(),
  /** Seconds the running phase still needs at its rate so far; null when unknown. */
  etaSeconds: z.number().nonnegative().nullable(),
  phases: z.array(PhaseProgressSchema),
});
export type RestoreProgressRecord = z.infer<typeof RestoreProgressSchema>;
