import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

/**
 * What this host's datadir was last backed up as (`stateDir/backup-lineage.json`): the base an
 * incremental backup's pages are taken against. InnoDB LSNs only mean something within one
 * datadir's life, so the record is written after each complete backup of the host's server and
 * removed before a restore replaces the datadir: an incremental is only ever based on a backup of
 * the very data it reads (no record, no parent; the backup falls back to a full one or refuses).
 */
export const BackupLineage = z.object({
  backupId: z.string().min(1),
  /** The datadir and server the backup read. */
  datadir: z.string().min(1),
  serverId: z.number().int().nonnegative(),
  /** The backup's end LSN: the next incremental copies every page changed after it. */
  toLsn: z.string().regex(/^\d+$/),
  /** Incrementals since the full backup the chain starts from (0 for a full backup). */
  incrementals: z.number().int().nonnegative(),
  writtenAt: z.string(),
});
export type BackupLineage = z.infer<typeof BackupLineage>;

const FILE = "backup-lineage.json";

export function readBackupLineage(stateDir: string): BackupLineage | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(stateDir, FILE), "utf8");
  } catch {
    return undefined;
  }
  // A damaged record is no record: the next backup is a full one, never a guess.
  try {
    const parsed = BackupLineage.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function writeBackupLineage(stateDir: string, lineage: Omit<BackupLineage, "writtenAt">): void {
  const file = path.join(stateDir, FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify({ ...lineage, writtenAt: new Date().toISOString() }), {
    mode: 0o600,
  });
  renameSync(`${file}.tmp`, file);
}

/**
 * Before a restore replaces `datadir`: if it is the one the record is of, no incremental may build
 * on what was there. A restore elsewhere (another directory, `--no-start`) leaves the record: the
 * server still runs on its own data, and a server later moved onto the restored copy no longer
 * matches the record's datadir.
 */
export function forgetBackupLineage(stateDir: string, datadir: string): void {
  const lineage = readBackupLineage(stateDir);
  if (lineage && path.resolve(lineage.datadir) !== path.resolve(datadir)) return;
  rmSync(path.join(stateDir, FILE), { force: true });
}
