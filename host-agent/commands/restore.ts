/**
 * `rewind-agent restore …`: the whole-server restore (host-agent/restore/restore.ts runs the
 * steps: plan, fetch and verify, install beside the target, start read-only, replay, promote or
 * replicate).
 */
export { type RestoreOptions, type RestoreResult, readPlan, restore } from "../restore/restore.js";
