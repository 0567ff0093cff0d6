import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import {
  BINLOG_MANIFEST_FORMAT_VERSION,
  BinlogManifest,
  binlogSequence,
  recordOf,
} from "../../core/binlog/manifest.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { gtidModel } from "../../core/gtid/index.js";
import { binlogManifestKey, binlogObjectKey } from "../../core/layout.js";
import { addToBinlogIndex, type ShippedTail, TailHint, tailHint } from "../../core/store/binlog-index.js";
import { partSize } from "../config.js";
import type { AgentContext } from "../context.js";
import { encryptionRecord } from "../encryption.js";
import { log } from "../log.js";
import { putJson } from "../s3/put-json.js";
import { AGENT_VERSION } from "../version.js";
import { shipClosedBinlog } from "./ship-file.js";

/**
 * Closed-file shipping, shared by binlog-stream (in the background) and binlog-push (the
 * watchdog when no streamer runs): each closed file S3 lacks goes whole, then its manifest, then
 * the index.
 */

const iso = (seconds: number | null) => (seconds === null ? null : new Date(seconds * 1000).toISOString());

export interface ShipTarget {
  readonly client: S3Client;
  readonly keyring: KeyringNode;
  readonly keyId: string;
  readonly source: string;
  /** The server's binlog directory. */
  readonly dir: string;
}

/**
 * Ships each closed file newer than the tail S3 holds, in order, each followed by its manifest;
 * then indexes what it shipped (even when a later file failed) and leaves the hint for the next
 * run. Shared by binlog-push and binlog-stream.
 */
export async function shipClosedFiles(
  context: AgentContext,
  target: ShipTarget & {
    readonly closed: readonly string[];
    readonly tail: ShippedTail;
    readonly hintFile: string;
  },
): Promise<{
  shipped: BinlogManifest[];
  lastEventTime: string | null;
  /** Whether what was shipped is in the index (else the next shipment indexes it), and why not. */
  indexed: boolean;
  indexError?: string;
}> {
  const { config, engine, location } = context;
  const { client, keyring, keyId, source, closed, tail } = target;
  // Files are shipped in order, so everything up to the newest shipped one is in S3.
  const lastShippedSequence = tail.lastShipped ? binlogSequence(tail.lastShipped.file) : -1;
  const shippedManifests: BinlogManifest[] = [];
  let lastEventTime = tail.lastShipped?.lastEventTime ?? null;
  let indexed = true;
  let indexError: string | undefined;
  try {
    for (const [index, file] of closed.entries()) {
      if (binlogSequence(file) <= lastShippedSequence) continue;
      const encryptionContext = { cluster: config.cluster, source, file };
      const result = await shipClosedBinlog({
        engine: engine.name,
        path: path.join(target.dir, file),
        client,
        bucket: config.bucket,
        key: binlogObjectKey(location, source, file),
        keyring,
        encryptionContext,
        compressionLevel: config.backup.compressionLevel,
        partSize: partSize(config),
        concurrency: config.backup.uploadConcurrency,
      }).catch((error: Error) => {
        throw shipFailure(file, source, error);
      });
      const manifest = BinlogManifest.parse({
        formatVersion: BINLOG_MANIFEST_FORMAT_VERSION,
        cluster: config.cluster,
        engine: engine.name,
        source,
        file,
        previousFile: index > 0 ? closed[index - 1] : null,
        serverVersion: result.summary.serverVersion,
        size: result.summary.size,
        sha256: result.sha256,
        firstEventTime: iso(result.summary.firstEventTime),
        lastEventTime: iso(result.summary.lastEventTime),
        lastCommitTime: result.lastCommitTime,
        gtidsBefore: gtidModel(engine.name).parseSet(result.summary.gtidsBefore).toString(),
        firstGtid: result.summary.firstGtid,
        lastGtid: result.summary.lastGtid,
        gtidsAdded: result.gtidsAdded,
        transactions: result.summary.transactions,
        ...(result.crashRecovered ? { crashRecovered: result.crashRecovered } : {}),
        stored: result.stored,
        storedSha256: result.storedSha256,
        compression: { algorithm: "zstd", level: config.backup.compressionLevel },
        encryption: encryptionRecord(keyId, encryptionContext),
        shippedAt: new Date().toISOString(),
        agentVersion: AGENT_VERSION,
      });
      await putJson(client, config.bucket, binlogManifestKey(location, source, file), manifest).catch(
        (error: Error) => {
          throw shipFailure(file, source, error);
        },
      );
      shippedManifests.push(manifest);
      lastEventTime = manifest.lastEventTime ?? lastEventTime;
      context.heartbeat();
      log("info", "binlog shipped", {
        file,
        transactions: manifest.transactions,
        lastGtid: manifest.lastGtid,
      });
    }
  } finally {
    // Whatever was shipped is indexed, even when a later file failed; a run killed before this
    // leaves manifests the next one indexes.
    // Older shipped files the index could not take yet go in first: the index never records a
    // file while an older one is missing from it (its newest record says where S3's tail is).
    const toIndex = [...(tail.pendingIndex ?? []), ...shippedManifests];
    if (toIndex.length > 0) {
      await addToBinlogIndex(client, config.bucket, location, source, toIndex, tail.index).catch(
        (error: RewindError) => {
          indexed = false;
          indexError = `${error.name}: ${error.message}`;
          log("warn", error.message, { error: error.name, cause: String(error.cause) });
        },
      );
    }
    const newest = shippedManifests.at(-1);
    const next = indexed
      ? tailHint(location, source, newest ? recordOf(newest) : tail.lastShipped, tail.index)
      : undefined;
    if (next) writeHint(target.hintFile, next);
  }
  return { shipped: shippedManifests, lastEventTime, indexed, ...(indexError ? { indexError } : {}) };
}

/** A closed file that could not be shipped whole: UploadFailed naming it, with S3's error as the cause. */
function shipFailure(file: string, source: string, error: Error): RewindError {
  if (error instanceof RewindError && error.name !== ErrorNames.upload) return error;
  return new RewindError(
    ErrorNames.upload,
    `could not ship ${file} of ${source} whole: ${error.message}; its chunks keep it restorable meanwhile, and shipping is tried again`,
    undefined,
    { cause: error },
  );
}

export function readHint(file: string): TailHint | undefined {
  try {
    return TailHint.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    return undefined;
  }
}

/** Written whole (temp file, rename) so a killed push never leaves half a hint. */
function writeHint(file: string, hint: TailHint): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}`;
  writeFileSync(temporary, JSON.stringify(hint), { mode: 0o600 });
  renameSync(temporary, file);
}
