import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";
import { ErrorNames, RewindError } from "../core/errors.js";

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One backup or restore at a time per host. */
export function acquireHostLock(stateDir: string, task: string): () => void {
  return acquireLock(stateDir, "agent.lock", task);
}

/**
 * A lock file holding the owner's pid and task. A lock left by a dead process (the agent was
 * killed) is taken over.
 */
export function acquireLock(stateDir: string, name: string, task: string): () => void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, name);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, task, since: new Date().toISOString() }));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      let holder: { pid?: number; task?: string; since?: string } = {};
      try {
        holder = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        // A lock file cut short by a crash is stale.
      }
      if (holder.pid && processAlive(holder.pid)) {
        throw new RewindError(
          ErrorNames.busy,
          `this host is busy: ${holder.task ?? "another task"} (pid ${holder.pid}) has run since ${holder.since}; only one such task runs at a time, so try again when it ends`,
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new RewindError(ErrorNames.busy, `cannot take the lock ${file}; another agent keeps taking it`);
}
