import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
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
 * A lock file holding the owner's pid and task. It appears complete or not at all (written aside,
 * then hard-linked into place), so a second agent never reads a half-written lock and takes it
 * for stale. A lock left by a dead process (the agent was killed) is taken over.
 */
export function acquireLock(stateDir: string, name: string, task: string): () => void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, name);
  const mine = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(mine, JSON.stringify({ pid: process.pid, task, since: new Date().toISOString() }), {
    mode: 0o600,
  });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, file);
        return () => rmSync(file, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const holder = readHolder(file);
      if (holder === undefined) continue;
      if (holder.pid && processAlive(holder.pid)) {
        throw new RewindError(
          ErrorNames.busy,
          `this host is busy: ${holder.task ?? "another task"} (pid ${holder.pid}) has run since ${holder.since}; only one such task runs at a time, so try again when it ends`,
        );
      }
      takeOverStale(file, holder);
    }
    throw new RewindError(ErrorNames.busy, `cannot take the lock ${file}; another agent keeps taking it`);
  } finally {
    rmSync(mine, { force: true });
  }
}

export interface LockHolder {
  readonly pid?: number;
  readonly task?: string;
  readonly since?: string;
}

/** The holder of `file`; undefined when it vanished meanwhile. */
function readHolder(file: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as LockHolder;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    // Unreadable content cannot come from a living agent (locks appear whole).
    return {};
  }
}

/** Removes a dead holder's lock, unless another agent replaced it since it was read. */
function takeOverStale(file: string, stale: LockHolder): void {
  const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const moved = readHolder(aside);
  if (moved?.pid !== stale.pid && moved?.pid && processAlive(moved.pid)) {
    // A live agent's fresh lock was moved: put it back, whatever happens to this attempt.
    try {
      linkSync(aside, file);
    } catch {
      // Someone holds the lock again; the live holder keeps running either way.
    }
  }
  rmSync(aside, { force: true });
}

/** The live process holding the lock `name`, if any: whether a service (binlog-stream) runs. */
export function liveHolder(stateDir: string, name: string): LockHolder | undefined {
  const holder = readHolder(path.join(stateDir, name));
  return holder?.pid && processAlive(holder.pid) ? holder : undefined;
}
