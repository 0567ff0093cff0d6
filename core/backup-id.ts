import { configError, ErrorNames, RewindError } from "./errors.js";

/** Backup ids sort by time: `20261121T031500Z-full-<host>`. */
export type BackupType = "full" | "incremental";

/** `20261121T031500Z-full-<host>`; the host part is what sanitizeHostName leaves, at most 100 characters. */
export const BACKUP_ID = /^(\d{8}T\d{6}Z)-(full|incremental)-([A-Za-z0-9._-]{1,100})$/;

export interface ParsedBackupId {
  readonly startedAt: Date;
  readonly type: BackupType;
  readonly host: string;
}

export function compactTimestamp(time: Date): string {
  return time
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/** Host names become part of S3 keys; anything outside a safe set is replaced. */
export function sanitizeHostName(host: string): string {
  const safe = host.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 100);
  if (safe.length === 0) throw configError("host name is empty; set `host` in the agent config");
  return safe;
}

export function makeBackupId(startedAt: Date, type: BackupType, host: string): string {
  return `${compactTimestamp(startedAt)}-${type}-${sanitizeHostName(host)}`;
}

export function parseBackupId(id: string): ParsedBackupId {
  const match = BACKUP_ID.exec(id);
  if (!match) {
    throw new RewindError(
      ErrorNames.usage,
      `"${id}" is not a backup id; expected the form 20261121T031500Z-full-<host> (\`rewind-agent list\` shows them)`,
    );
  }
  const [, stamp, type, host] = match as unknown as [string, string, BackupType, string];
  const iso = `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`;
  const startedAt = new Date(iso);
  if (Number.isNaN(startedAt.getTime()))
    throw new RewindError(ErrorNames.usage, `"${id}" has an impossible timestamp`);
  return { startedAt, type, host };
}
