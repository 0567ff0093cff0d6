import { statfsSync } from "node:fs";

/** Bytes free for an unprivileged writer on the file system holding `dir`; null when unknown. */
export function freeBytes(dir: string): number | null {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return null;
  }
}
