import { ErrorNames, RewindError } from "./errors.js";

/**
 * Parsers for the files xtrabackup/mariabackup leave next to a backup: the binlog coordinates
 * of the consistent point and the LSN range (needed for incrementals).
 */
export interface BinlogCoordinates {
  readonly file: string;
  readonly position: number;
  /** GTID set at the consistent point; empty when GTIDs are not in use. */
  readonly gtidSet: string;
}

/**
 * `xtrabackup_binlog_info` (also `mariadb_backup_binlog_info`): tab-separated
 * `file  position  [gtid set]`. MySQL splits a long GTID set over several lines.
 */
export function parseBinlogInfo(text: string): BinlogCoordinates {
  const trimmed = text.trim();
  const match = /^(\S+)\s+(\d+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  if (!match) {
    throw new RewindError(
      ErrorNames.backupTool,
      `xtrabackup_binlog_info has no "file position" line (got ${JSON.stringify(trimmed.slice(0, 200))}); is binary logging enabled on the server?`,
    );
  }
  const gtidSet = (match[3] ?? "").replace(/\s+/g, "").replace(/,$/, "");
  return { file: match[1]!, position: Number(match[2]), gtidSet };
}

export interface LsnRange {
  readonly backupType: string;
  readonly fromLsn: string;
  readonly toLsn: string;
  readonly lastLsn: string;
}

/** `xtrabackup_checkpoints`: `key = value` lines. LSNs stay strings: they exceed 2^53. */
export function parseCheckpoints(text: string): LsnRange {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\s*([a-z_]+)\s*=\s*(\S+)\s*$/.exec(line);
    if (match) fields.set(match[1]!, match[2]!);
  }
  const need = (name: string): string => {
    const value = fields.get(name);
    if (value === undefined)
      throw new RewindError(
        ErrorNames.backupTool,
        `xtrabackup_checkpoints has no ${name}; the backup tool did not finish`,
      );
    return value;
  };
  return {
    backupType: need("backup_type"),
    fromLsn: need("from_lsn"),
    toLsn: need("to_lsn"),
    lastLsn: fields.get("last_lsn") ?? need("to_lsn"),
  };
}
