import { readFileSync } from "node:fs";
import path from "node:path";
import type { BackupManifest } from "../../core/manifest.js";
import { readBackupManifest } from "../../core/store/backup-manifest.js";
import { s3Client } from "../../host-agent/clients.js";
import type { ListResult } from "../../host-agent/commands/list.js";
import { parseConfig } from "../../host-agent/config.js";
import { writeRestoreTargetConfig } from "../../sandbox/hosts/agent.js";
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

/**
 * A restore target host on this machine: a server configured (not started) on its own datadir
 * under `dir/<name>`, and an agent config of its own (`writeRestoreTargetConfig`); the server is
 * added to `servers`, for the caller to destroy.
 */
export async function restoreTargetHost(
  dir: string,
  sourceConfigFile: string,
  servers: MariaDbServer[],
  name: string,
  serverId: number,
): Promise<{ server: MariaDbServer; targetConfig: string }> {
  const server = await MariaDbServer.configure({
    baseDir: `${dir}/${name}`,
    serverId,
    existingDatadir: `${dir}/${name}/data`,
  });
  servers.push(server);
  return { server, targetConfig: writeRestoreTargetConfig(sourceConfigFile, server, `${dir}/${name}.json`) };
}

/** `rewind-agent list --json`'s result, or a failure with the agent's stderr. */
export async function listCluster(configFile: string): Promise<ListResult> {
  const run = await agent(["list", "--json", "--config", configFile]);
  if (run.exitCode !== 0 || !run.output?.result) throw new Error(`list failed: ${run.stderr.slice(-1500)}`);
  return run.output.result as unknown as ListResult;
}
