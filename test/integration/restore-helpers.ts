import { readFileSync } from "node:fs";
import path from "node:path";
import type { BackupManifest } from "../../core/manifest.js";
import { s3Client } from "../../host-agent/clients.js";
import { parseConfig } from "../../host-agent/config.js";
import { dataKeyring } from "../../host-agent/encryption.js";
import { mariadbEngine } from "../../host-agent/engines/mariadb.js";
import { extractBackup } from "../../host-agent/restore/extract.js";
import { prepareBackup } from "../../host-agent/restore/prepare.js";
import { readBackupManifest } from "../../host-agent/s3/manifests.js";
import { MariaDbServer } from "../../infra/local/mariadb-server.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

export interface AgentFiles {
  readonly config: Record<string, unknown>;
}

function clientsFor(raw: Record<string, unknown>) {
  const config = parseConfig(raw, "the test agent config");
  return { client: s3Client(config), bucket: config.bucket, keyring: dataKeyring(config).keyring };
}

export async function manifestOf(config: Record<string, unknown>, backupId: string): Promise<BackupManifest> {
  const { client, bucket } = clientsFor(config);
  return readBackupManifest(client, bucket, { cluster: config.cluster as string }, backupId);
}

/** Download → verify → decrypt → decompress → mbstream -x → prepare, then start a server on it. */
export async function restoreToNewServer(
  config: Record<string, unknown>,
  manifest: BackupManifest,
  baseDir: string,
  serverId: number,
): Promise<{ server: MariaDbServer; binlogInfo: string }> {
  const { client, bucket, keyring } = clientsFor(config);
  const datadir = path.join(baseDir, "restored");
  await extractBackup(manifest, {
    client,
    bucket,
    keyring,
    engine: mariadbEngine,
    targetDir: datadir,
    concurrency: 4,
  });
  await prepareBackup(mariadbEngine, datadir);
  const binlogInfo = readFileSync(path.join(datadir, "xtrabackup_binlog_info"), "utf8");
  const server = await MariaDbServer.start({ baseDir, serverId, existingDatadir: datadir });
  return { server, binlogInfo };
}
