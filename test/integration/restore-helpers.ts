import { readFileSync } from "node:fs";
import path from "node:path";
import type { BackupManifest } from "../../core/manifest.js";
import { readBackupManifest } from "../../core/store/backup-manifest.js";
import { s3Client } from "../../host-agent/clients.js";
import { parseConfig } from "../../host-agent/config.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { agent } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

function clientsFor(raw: Record<string, unknown>) {
  const config = parseConfig(raw, "the test agent config");
  return { client: s3Client(config), bucket: config.bucket };
}

export async function manifestOf(config: Record<string, unknown>, backupId: string): Promise<BackupManifest> {
  const { client, bucket } = clientsFor(config);
  return readBackupManifest(client, bucket, { cluster: config.cluster as string }, backupId);
}

/** `rewind-agent restore --backup-id … --no-start`: a prepared datadir, nothing started. */
export function restoreBackupInto(configFile: string, backupId: string, datadir: string, ...extra: string[]) {
  return agent([
    "restore",
    "--backup-id",
    backupId,
    "--datadir",
    datadir,
    "--no-start",
    ...extra,
    "--config",
    configFile,
  ]);
}

/** `rewind-agent restore` (download → verify → decrypt → decompress → mbstream -x → prepare), then a server on it. */
export async function restoreToNewServer(
  configFile: string,
  backupId: string,
  baseDir: string,
  serverId: number,
): Promise<{ server: MariaDbServer; binlogInfo: string }> {
  const datadir = path.join(baseDir, "restored");
  const run = await restoreBackupInto(configFile, backupId, datadir);
  if (run.exitCode !== 0) throw new Error(`restore failed: ${run.stderr.slice(-3000)}`);
  const binlogInfo = readFileSync(path.join(datadir, "xtrabackup_binlog_info"), "utf8");
  const server = await MariaDbServer.start({ baseDir, serverId, existingDatadir: datadir });
  return { server, binlogInfo };
}
