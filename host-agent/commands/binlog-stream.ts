import { STREAM_LOCK } from "../binlog/stream-status.js";
import { Streamer, type StreamResult, type StreamStats } from "../binlog/streamer.js";
import { s3Client } from "../clients.js";
import { type AgentContext, asBackupUser } from "../context.js";
import { dataKeyring } from "../encryption.js";
import { acquireLock } from "../lock.js";

export type { StreamResult } from "../binlog/streamer.js";

/**
 * `rewind-agent binlog-stream`: the long-running service (a systemd unit, `rewind-agent install`)
 * that follows the active binlog as the server appends to it and ships every complete transaction
 * within `stream.intervalSeconds` as chunk objects with their own manifests
 * (core/binlog/chunk.ts). Only whole transactions are shipped; an idle server uploads nothing.
 * By default only the cluster's current primary ships: every host runs the service and checks its
 * role, so after a failover the promoted host goes on from what S3 holds. Closed files are shipped
 * whole with their file manifest and indexed, as binlog-push does, in the background.
 *
 * S3 is the truth: on start, after a failure (S3 or the server down) and after a role change it
 * resumes from the chunks S3 holds, so nothing is shipped twice under one chunk number and
 * nothing is skipped. The secret and the keyring are read once per process. `--once` ships what
 * is complete now and exits.
 */
export async function binlogStream(context: AgentContext, options: { once: boolean }): Promise<StreamResult> {
  const { config } = context;
  const release = acquireLock(config.stateDir, STREAM_LOCK, "binlog-stream");
  const client = s3Client(config);
  const { keyring, keyId } = dataKeyring(config);
  const stats: StreamStats = { source: null, chunks: 0, files: [], lastShippedGtid: null };
  try {
    await asBackupUser(context, async (_defaultsFile, sql) => {
      const streamer = new Streamer(context, sql, { client, keyring, keyId }, stats);
      await streamer.run(options.once);
    });
  } finally {
    release();
  }
  return { ...stats };
}
