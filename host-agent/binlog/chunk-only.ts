import { statSync } from "node:fs";
import path from "node:path";
import { binlogSequence } from "../../core/binlog/manifest.js";

/**
 * Closed binlogs not yet shipped whole and indexed: a restore still reaches them through their
 * chunks, but only the whole file and its index record make them cheap to plan and keep them
 * out of every chunk listing. How many, and since when the oldest was closed (its last write on
 * the server's disk; now when the server no longer has it).
 */
export interface ChunkOnly {
  readonly files: number;
  readonly since: string | null;
}

/** `closed` files newer than `wholeThrough` (the newest file shipped whole and indexed). */
export function chunkOnlyFiles(closed: readonly string[], wholeThrough: string | null): string[] {
  const done = wholeThrough === null ? -1 : binlogSequence(wholeThrough);
  return [...new Set(closed)]
    .filter((file) => binlogSequence(file) > done)
    .sort((a, b) => binlogSequence(a) - binlogSequence(b));
}

export function chunkOnlyState(dir: string, files: readonly string[], now = Date.now()): ChunkOnly {
  if (files.length === 0) return { files: 0, since: null };
  let oldest = now;
  for (const file of files) {
    try {
      oldest = Math.min(oldest, statSync(path.join(dir, file)).mtimeMs);
    } catch {
      // Purged from the server: it can no longer be shipped whole; counted from now.
    }
  }
  return { files: files.length, since: new Date(oldest).toISOString() };
}

/** Seconds since the oldest chunk-only file closed; 0 when there is none. */
export function chunkOnlySeconds(state: ChunkOnly, now = Date.now()): number {
  return state.since === null ? 0 : Math.max(0, Math.round((now - Date.parse(state.since)) / 1000));
}
