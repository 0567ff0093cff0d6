import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { type BackupType, makeBackupId } from "../../core/backup-id.js";
import { parseBinlogInfo, parseCheckpoints } from "../../core/binlog-coordinates.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { backupManifestKey, backupPrefix, segmentKey } from "../../core/layout.js";
import { BackupManifest, MANIFEST_FORMAT_VERSION } from "../../core/manifest.js";
import { readBackupChain } from "../../core/store/backup-manifest.js";
import { tablesInStream } from "../../core/xbstream.js";
import { readBackupLineage, writeBackupLineage } from "../backup/lineage.js";
import { streamBackup } from "../backup/stream-backup.js";
import { UnfinishedBackupRecord } from "../backup/unfinished.js";
import { s3Client } from "../clients.js";
import { partSize, segmentSize } from "../config.js";
import { type AgentContext, asBackupUser, readBinloggingServer } from "../context.js";
import { freeBytes } from "../disk.js";
import { dataKeyring, encryptionRecord } from "../encryption.js";
import type { ServerIdentity } from "../engines/engine.js";
import { historyForBackup } from "../history.js";
import { acquireHostLock } from "../lock.js";
import { log, Progress } from "../log.js";
import { putJson } from "../s3/put-json.js";
import { SegmentWriter } from "../s3/segment-writer.js";
import type { SqlClient } from "../sql-client.js";
import { runTool } from "../tool.js";
import { missingPrivileges } from "../users/ensure.js";
import { AGENT_VERSION } from "../version.js";

export interface BackupResult {
  readonly backupId: string;
  readonly manifest: string;
  /** What was taken: an incremental asked for without a valid base may be a full one. */
  readonly type: BackupType;
  /** An incremental's base. */
  readonly parentBackupId?: string;
  /** Why an incremental asked for was taken as a full backup. */
  readonly fullInstead?: string;
  readonly rawBytes: number;
  readonly storedBytes: number;
  readonly segments: number;
  readonly seconds: number;
  readonly rawMiBPerSecond: number;
  readonly binlog: { file: string; position: number; gtidSet: string };
}

const MiB = 1024 * 1024;

/** The backed-up server's option files, for rebuilding a host. auto.cnf is never included. */
function readOptionFiles(paths: readonly string[]): string {
  return paths
    .filter((file) => path.basename(file) !== "auto.cnf" && existsSync(file))
    .map((file) => `# ${file}\n${readFileSync(file, "utf8")}`)
    .join("\n");
}

/**
 * The base of an incremental backup of this host's server: the backup the host's lineage record
 * names (the newest complete backup of this very datadir), its chain complete in S3, not past the
 * server's LSN, and the chain not yet at its configured length; or why there is none.
 */
async function incrementalBase(
  context: AgentContext,
  client: ReturnType<typeof s3Client>,
  identity: ServerIdentity,
  sql: SqlClient,
): Promise<{ parent: BackupManifest; incrementals: number } | { reason: string }> {
  const { config, engine, location } = context;
  const lineage = readBackupLineage(config.stateDir);
  if (!lineage) {
    return {
      reason: `no backup of this host's datadir is on record since it was installed or restored (${config.stateDir}/backup-lineage.json)`,
    };
  }
  if (lineage.datadir !== identity.datadir || lineage.serverId !== identity.serverId) {
    return {
      reason: `the last backup on record here, ${lineage.backupId}, read ${lineage.datadir} of server ${lineage.serverId}; the server now runs on ${identity.datadir} as server ${identity.serverId}`,
    };
  }
  const maxChain = config.backup.incremental.maxChain;
  if (lineage.incrementals >= maxChain) {
    return {
      reason: `the chain since the last full backup already has ${lineage.incrementals} incrementals, the most backup.incremental.maxChain (${maxChain}) allows`,
    };
  }
  const chain = await readBackupChain(client, config.bucket, location, lineage.backupId);
  if (!chain.complete) {
    return { reason: `its base ${lineage.backupId} cannot be restored: ${chain.reason}` };
  }
  const parent = chain.links.at(-1)!;
  if (parent.lsn.toLsn !== lineage.toLsn || parent.host !== config.host) {
    return { reason: `backup ${parent.backupId} in S3 is not the one this host recorded` };
  }
  const lsn = await engine.readLsn(sql);
  if (!/^\d+$/.test(lsn) || BigInt(lsn) < BigInt(parent.lsn.toLsn)) {
    return {
      reason: `the server's LSN (${lsn || "unreadable"}) is behind its base ${parent.backupId}'s end (${parent.lsn.toLsn}): this is not the datadir that backup read`,
    };
  }
  return { parent, incrementals: lineage.incrementals };
}

/**
 * `rewind-agent backup --type full|incremental`: stream a physical backup to S3 and write the
 * manifest last. An incremental holds the pages changed since its base (incrementalBase); without
 * a valid base it is taken as a full backup and says why, or refused (backup.incremental.whenNoBase).
 */
export async function backup(context: AgentContext, requested: BackupType): Promise<BackupResult> {
  const { config, engine, location } = context;
  const release = acquireHostLock(config.stateDir, `backup --type ${requested}`);
  const client = s3Client(config);
  const unfinished = new UnfinishedBackupRecord(config.stateDir);
  try {
    await unfinished.cleanUp(client);
    mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
    const free = freeBytes(config.workDir);
    if (free !== null && free < config.minFreeMiB * MiB) {
      throw new RewindError(
        ErrorNames.insufficientSpace,
        `only ${Math.floor(free / MiB)} MiB free in workDir ${config.workDir}; the backup tool needs at least ${config.minFreeMiB} MiB there for its redo log copy. Free space or point workDir elsewhere`,
      );
    }
    return await asBackupUser(context, async (defaultsFile, sql) => {
      const { identity, replication } = await readBinloggingServer(
        engine,
        sql,
        "no point-in-time restore is possible",
      );
      const missing = await missingPrivileges(context, sql, "backup");
      if (missing.length > 0) {
        throw new RewindError(
          ErrorNames.configInvalid,
          `the backup account lacks ${missing.join(", ")}, which the backup tool needs; run \`rewind-agent users ensure\` on the primary (it grants what core/privileges.ts lists)`,
        );
      }
      const versionOutput = await runTool(engine.tools.backup, ["--version"]);
      const toolVersion = engine.parseToolVersion(versionOutput.stderr + versionOutput.stdout);
      engine.checkToolVersion(identity.version, toolVersion);
      const base =
        requested === "incremental" ? await incrementalBase(context, client, identity, sql) : undefined;
      let fullInstead: string | undefined;
      if (base && "reason" in base) {
        if (config.backup.incremental.whenNoBase === "refuse") {
          throw new RewindError(
            ErrorNames.noIncrementalBase,
            `no incremental backup was taken: ${base.reason}. Take a full backup of this host (\`backup --type full\`), or set backup.incremental.whenNoBase to "full"`,
          );
        }
        fullInstead = base.reason;
        log("warn", "an incremental backup was asked for; taking a full backup instead", {
          reason: base.reason,
        });
      }
      // The backup this one builds on (an incremental), and how many incrementals precede it.
      const parent = base && "parent" in base ? base.parent : undefined;
      const incrementalsBefore = base && "parent" in base ? base.incrementals : 0;
      const type: BackupType = parent ? "incremental" : "full";

      const started = new Date();
      const backupId = makeBackupId(started, type, config.host);
      const manifestKey = backupManifestKey(location, backupId);
      const work = mkdtempSync(path.join(config.workDir, `${backupId}-`));
      const { keyring, keyId } = dataKeyring(config);
      const encryptionContext = { cluster: config.cluster, backupId };
      unfinished.begin(config.bucket, backupPrefix(location, backupId), manifestKey);
      const writer = new SegmentWriter({
        client,
        bucket: config.bucket,
        keyFor: (index) => segmentKey(location, backupId, index),
        partSize: partSize(config),
        segmentSize: segmentSize(config),
        concurrency: config.backup.uploadConcurrency,
        onUploadStarted: (key, uploadId) => unfinished.uploadStarted(key, uploadId),
        onUploadEnded: (key) => unfinished.uploadEnded(key),
      });
      log("info", "backup started", {
        backupId,
        tool: engine.tools.backup,
        toolVersion,
        server: identity.version,
      });
      const progress = new Progress(`backup ${backupId}`);
      try {
        const streamed = await streamBackup({
          tool: engine.tools.backup,
          toolArgs: [
            `--defaults-extra-file=${defaultsFile}`,
            ...engine.backupArgs({
              datadir: identity.datadir,
              extraLsndir: path.join(work, "lsn"),
              tmpdir: work,
              parallel: config.backup.parallel,
              replicaInfo: replication !== null,
              ...(parent ? { incrementalLsn: parent.lsn.toLsn } : {}),
            }),
          ],
          completedMarker: engine.completedMarker,
          toolLogFile: path.join(config.workDir, `${backupId}.log`),
          compressionLevel: config.backup.compressionLevel,
          compressionThreads: config.backup.compressionThreads,
          blockSize: config.backup.blockSizeMiB * MiB,
          keyring,
          encryptionContext,
          sink: writer,
          captureFiles: [...engine.binlogInfoFiles, "xtrabackup_checkpoints"],
          onRawBytes: (bytes) => {
            progress.update(bytes);
            context.heartbeat();
          },
          signal: context.signal,
        });
        progress.done();
        const binlogInfo = engine.binlogInfoFiles.map((file) => streamed.captured.get(file)).find(Boolean);
        if (!binlogInfo) {
          throw new RewindError(
            ErrorNames.backupTool,
            `the backup stream holds none of ${engine.binlogInfoFiles.join(", ")}, so its binlog position is unknown and it could not seed a point-in-time restore`,
          );
        }
        const checkpoints = streamed.captured.get("xtrabackup_checkpoints");
        if (!checkpoints)
          throw new RewindError(ErrorNames.backupTool, "the backup stream holds no xtrabackup_checkpoints");
        const binlog = parseBinlogInfo(binlogInfo);
        const lsn = parseCheckpoints(checkpoints);
        if (parent && (lsn.backupType !== "incremental" || lsn.fromLsn !== parent.lsn.toLsn)) {
          throw new RewindError(
            ErrorNames.backupTool,
            `the incremental stream (backup_type ${lsn.backupType}) starts at LSN ${lsn.fromLsn}, not at its base ${parent.backupId}'s end (${parent.lsn.toLsn}); no manifest was written`,
          );
        }
        const ended = new Date();
        const history = await historyForBackup(context, client, binlog.gtidSet).catch((error: Error) => {
          log("warn", "could not tell which history this backup is on; it is taken as the initial one", {
            error: error.message,
          });
          return undefined;
        });
        const manifest = BackupManifest.parse({
          formatVersion: MANIFEST_FORMAT_VERSION,
          cluster: config.cluster,
          backupId,
          type,
          parentBackupId: parent?.backupId ?? null,
          host: config.host,
          engine: { name: engine.name, version: identity.version },
          tool: { name: engine.tools.backup, version: toolVersion },
          serverId: identity.serverId,
          serverUuid: identity.serverUuid,
          binlogSource: engine.binlogSource(identity, config.host),
          startTime: started.toISOString(),
          endTime: ended.toISOString(),
          binlog,
          ...(history ? { history } : {}),
          lsn: { fromLsn: lsn.fromLsn, toLsn: lsn.toLsn, lastLsn: lsn.lastLsn },
          rawBytes: streamed.rawBytes,
          storedBytes: writer.bytesWritten,
          storedSha256: writer.streamHash.digest("hex"),
          segments: writer.segments,
          blocks: streamed.blocks,
          compression: { algorithm: "zstd", level: config.backup.compressionLevel },
          encryption: encryptionRecord(keyId, encryptionContext),
          myCnf: readOptionFiles(config.myCnfPaths),
          // From the stream's own entries: the backup account sees no user table in
          // information_schema with the grants it has (core/privileges.ts).
          tables: tablesInStream(streamed.paths),
          agentVersion: AGENT_VERSION,
        });
        await putJson(client, config.bucket, manifestKey, manifest);
        unfinished.finish();
        // What the next incremental of this datadir builds on.
        writeBackupLineage(config.stateDir, {
          backupId,
          datadir: identity.datadir,
          serverId: identity.serverId,
          toLsn: lsn.toLsn,
          incrementals: parent ? incrementalsBefore + 1 : 0,
        });
        const seconds = (ended.getTime() - started.getTime()) / 1000;
        log("info", "backup complete", { backupId, manifest: manifestKey });
        return {
          backupId,
          manifest: `s3://${config.bucket}/${manifestKey}`,
          type,
          ...(parent ? { parentBackupId: parent.backupId } : {}),
          ...(fullInstead ? { fullInstead } : {}),
          rawBytes: manifest.rawBytes,
          storedBytes: manifest.storedBytes,
          segments: manifest.segments.length,
          seconds,
          rawMiBPerSecond: Number((manifest.rawBytes / MiB / Math.max(seconds, 0.001)).toFixed(1)),
          binlog,
        };
      } catch (error) {
        writer.destroy();
        await unfinished.cleanUp(client).catch((cleanupError: Error) =>
          log("warn", "could not clean up the failed backup's objects; the next backup will", {
            error: cleanupError.message,
          }),
        );
        throw error;
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  } finally {
    release();
  }
}
