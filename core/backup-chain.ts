import type { BackupManifest } from "./manifest.js";

/**
 * Incremental backups form chains (DESIGN §3): a full backup, then incrementals each holding the
 * InnoDB pages changed since its parent (`parentBackupId`), whose LSN range starts exactly where
 * the parent's ends. A restore applies the whole chain, oldest first; one missing or mismatched
 * link makes every backup after it unusable.
 */
export type BackupChain =
  | {
      readonly complete: true;
      /** The full backup first, `backup` last. */
      readonly links: BackupManifest[];
    }
  | {
      readonly complete: false;
      /** The links found, `backup` last. */
      readonly links: BackupManifest[];
      /** The first link that is missing or does not fit, by id. */
      readonly missing: string;
      readonly reason: string;
    };

/** A chain longer than this is refused outright (a loop in damaged manifests ends here too). */
export const MAX_LINKS = 1000;

/** The chain `backup` restores through, resolved against the backups S3 holds (by id). */
export function chainOf(backup: BackupManifest, byId: ReadonlyMap<string, BackupManifest>): BackupChain {
  const links: BackupManifest[] = [backup];
  let current = backup;
  while (current.type === "incremental") {
    const parentId = current.parentBackupId;
    const broken = (missing: string, reason: string): BackupChain => ({
      complete: false,
      links: links.reverse(),
      missing,
      reason,
    });
    if (!parentId) return broken(current.backupId, `incremental ${current.backupId} names no parent`);
    const parent = byId.get(parentId);
    if (!parent) {
      return broken(
        parentId,
        `incremental ${current.backupId} is based on ${parentId}, which S3 does not hold complete (no manifest)`,
      );
    }
    const problem = linkProblem(parent, current);
    if (problem) return broken(parentId, problem);
    if (links.length >= MAX_LINKS) return broken(parentId, `the chain of ${backup.backupId} does not end`);
    links.push(parent);
    current = parent;
  }
  return { complete: true, links: links.reverse() };
}

/** Why `child` cannot be applied on `parent`, or null when it can. */
export function linkProblem(parent: BackupManifest, child: BackupManifest): string | null {
  if (parent.cluster !== child.cluster || parent.engine.name !== child.engine.name) {
    return `incremental ${child.backupId} and its parent ${parent.backupId} are of different clusters or engines`;
  }
  if (
    parent.host !== child.host ||
    parent.serverId !== child.serverId ||
    parent.serverUuid !== child.serverUuid
  ) {
    return `incremental ${child.backupId} (${child.host}, server ${child.serverId}) is not of the same server as its parent ${parent.backupId} (${parent.host}, server ${parent.serverId})`;
  }
  if (child.lsn.fromLsn !== parent.lsn.toLsn) {
    return `incremental ${child.backupId} starts at LSN ${child.lsn.fromLsn}, but its parent ${parent.backupId} ends at LSN ${parent.lsn.toLsn}`;
  }
  if (parent.endTime > child.startTime) {
    return `incremental ${child.backupId} began before its parent ${parent.backupId} ended`;
  }
  return null;
}

export function byBackupId(backups: readonly BackupManifest[]): Map<string, BackupManifest> {
  return new Map(backups.map((backup) => [backup.backupId, backup]));
}

/**
 * The backups a restore may start from: every full backup and every incremental whose chain is
 * complete; and the incrementals whose chain is broken, each with its first missing link.
 */
export function restorableBackups(backups: readonly BackupManifest[]): {
  readonly usable: BackupManifest[];
  readonly broken: { readonly backup: BackupManifest; readonly missing: string; readonly reason: string }[];
} {
  const byId = byBackupId(backups);
  const usable: BackupManifest[] = [];
  const broken: { backup: BackupManifest; missing: string; reason: string }[] = [];
  for (const backup of backups) {
    const chain = chainOf(backup, byId);
    if (chain.complete) usable.push(backup);
    else broken.push({ backup, missing: chain.missing, reason: chain.reason });
  }
  return { usable, broken };
}

/** The full backup a chain starts from (itself for a full), or undefined when the chain is broken. */
export function rootOf(
  backup: BackupManifest,
  byId: ReadonlyMap<string, BackupManifest>,
): BackupManifest | undefined {
  const chain = chainOf(backup, byId);
  return chain.complete ? chain.links[0] : undefined;
}
