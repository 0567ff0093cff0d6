import { existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { s3Client } from "../clients.js";
import type { AgentContext } from "../context.js";
import { dataKeyring } from "../encryption.js";
import { acquireHostLock } from "../lock.js";
import { log, Progress } from "../log.js";
import { extractBackup } from "../restore/extract.js";
import { prepareBackup } from "../restore/prepare.js";
import { readBackupManifest } from "../s3/manifests.js";

export interface RestoreResult {
  readonly backupId: string;
  readonly datadir: string;
  readonly binlog: { file: string; position: number; gtidSet: string };
  readonly storedBytes: number;
  readonly seconds: number;
}

/**
 * `rewind-agent restore --backup-id ID --datadir DIR`: a backup, verified and prepared, into an
 * empty or absent directory (a scratch restore or a new replica's datadir). Everything happens in
 * a staging directory beside it; only a fully verified, prepared copy is renamed into place.
 */
export async function restoreBackup(
  context: AgentContext,
  backupId: string,
  datadir: string,
): Promise<RestoreResult> {
  const target = path.resolve(datadir);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new RewindError(
      ErrorNames.targetNotEmpty,
      `${target} is not empty; nothing was touched. Restore into an empty or new directory, or move the old datadir aside first`,
    );
  }
  const release = acquireHostLock(context.config.stateDir, `restore ${backupId}`);
  const started = Date.now();
  const staging = `${target}.rewind-staging-${started}`;
  try {
    const client = s3Client(context.config);
    const manifest = await readBackupManifest(client, context.config.bucket, context.location, backupId);
    const progress = new Progress(`restore ${backupId}`);
    await extractBackup(manifest, {
      client,
      bucket: context.config.bucket,
      keyring: dataKeyring(context.config).keyring,
      engine: context.engine,
      targetDir: staging,
      concurrency: context.config.backup.uploadConcurrency,
      onBytes: (bytes) => {
        progress.update(bytes);
        context.heartbeat();
      },
    });
    progress.done();
    log("info", "backup downloaded and verified; preparing", { backupId, staging });
    await prepareBackup(context.engine, staging);
    // A restored server must get a fresh identity (DESIGN §3).
    rmSync(path.join(staging, "auto.cnf"), { force: true });
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(staging, target);
    return {
      backupId,
      datadir: target,
      binlog: manifest.binlog,
      storedBytes: manifest.storedBytes,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  } finally {
    release();
  }
}
