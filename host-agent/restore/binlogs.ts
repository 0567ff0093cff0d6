import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync } from "node:fs";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import { BinlogReader, type BinlogTransaction } from "../../core/binlog/parse.js";
import { type Crc32, crc32 as jsCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { gtidModel } from "../../core/gtid/index.js";
import { type RestorePlan, withinTime } from "../../core/restore-plan.js";
import { requireMicros } from "../../core/time.js";
import type { Engine } from "../engines/engine.js";
import { startTool } from "../tool.js";
import { decodeStream } from "./decode.js";

const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

/**
 * Downloads the plan's binlogs into `dir`, each verified part by part, decrypted, decompressed and
 * checked against the SHA-256 of the file the server wrote. Runs before any datadir is touched.
 */
export async function fetchBinlogs(
  plan: RestorePlan<BinlogManifest>,
  dir: string,
  options: { client: S3Client; bucket: string; keyring: KeyringNode; concurrency: number },
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const { file, manifest } of plan.binlogs) {
    const hash = createHash("sha256");
    const sink = createWriteStream(path.join(dir, file));
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    const written = pipeline(hashing, sink);
    await decodeStream(
      {
        label: `binlog ${manifest.source}/${file}`,
        segments: [manifest.stored],
        storedBytes: manifest.stored.size,
        storedSha256: manifest.storedSha256,
        encryptionContext: manifest.encryption.context,
      },
      { ...options, sink: hashing, sinkDone: written },
    );
    if (hash.digest("hex") !== manifest.sha256) {
      throw new RewindError(
        ErrorNames.verify,
        `binlog ${file} does not match the SHA-256 of the file the server wrote; it is damaged and nothing was restored`,
      );
    }
  }
}

export interface ReplayRange {
  readonly files: string[];
  readonly startPosition: number;
  readonly stopPosition: number;
  /** The last transaction replayed; null when the backup itself is the target. */
  readonly lastTransaction: BinlogTransaction | null;
  /** The GTIDs executed once replay is done (the backup's and every replayed one), for an applier's UNTIL clause. */
  readonly untilPosition: string;
  /** The backup's GTIDs: replay applies nothing of these again. */
  readonly backupGtids: string;
}

/**
 * Where replay stops: after the last transaction at or before the target second (time), or after
 * the target transaction (GTID). Read from the downloaded files themselves, so the stop is exact.
 */
export async function replayRange(plan: RestorePlan, dir: string): Promise<ReplayRange> {
  const none = {
    files: [],
    startPosition: 0,
    stopPosition: 0,
    lastTransaction: null,
    untilPosition: plan.backup.binlog.gtidSet,
    backupGtids: plan.backup.binlog.gtidSet,
  };
  if (plan.binlogs.length === 0) return none;
  const engine = plan.backup.engine.name;
  let position = gtidModel(engine).parseSet(plan.backup.binlog.gtidSet);
  const target = plan.target;
  const targetMicros = target.kind === "time" ? requireMicros(target.time, "the target time") : 0;
  let last: BinlogTransaction | null = null;
  let lastFileIndex = -1;
  for (const [index, planned] of plan.binlogs.entries()) {
    let found = false;
    const reader = new BinlogReader({
      crc32: nativeCrc32 ?? jsCrc32,
      onTransaction: (transaction) => {
        if (found || transaction.startPosition < planned.startPosition) return;
        if (transaction.gtid === null) {
          throw new RewindError(
            ErrorNames.binlogInvalid,
            `${planned.file} holds a transaction without a GTID at offset ${transaction.startPosition} (gtid_mode was not ON); Rewind replays by GTID only, so nothing was restored`,
          );
        }
        const committed = transaction.commitMicros ?? transaction.timestamp * 1e6;
        if (target.kind === "time" && !withinTime(engine, targetMicros, committed)) {
          found = true;
          return;
        }
        last = transaction;
        lastFileIndex = index;
        position = position.add(transaction.gtid);
        if (target.kind === "gtid" && transaction.gtid === target.gtid) found = true;
      },
    });
    for await (const chunk of createReadStream(path.join(dir, planned.file))) reader.push(chunk as Buffer);
    reader.finish();
    if (found) break;
  }
  if (target.kind === "gtid" && (last as BinlogTransaction | null)?.gtid !== target.gtid) {
    throw new RewindError(
      ErrorNames.planRefused,
      `GTID ${target.gtid} is not in the planned binlogs; nothing was restored. Check the GTID with \`rewind-agent list\``,
    );
  }
  if (!last) return none;
  const lastTransaction = last as BinlogTransaction;
  return {
    files: plan.binlogs.slice(0, lastFileIndex + 1).map((planned) => planned.file),
    startPosition: plan.binlogs[0]!.startPosition,
    stopPosition: lastTransaction.endPosition,
    lastTransaction,
    untilPosition: position.toString(),
    backupGtids: plan.backup.binlog.gtidSet,
  };
}

/**
 * Replays with `mariadb-binlog | mariadb` (`mysqlbinlog | mysql`): from the backup's exact position
 * in the first file to the stop position in the last, so no transaction is applied twice or missed.
 */
export async function replayBinlogs(
  engine: Engine,
  range: ReplayRange,
  dir: string,
  defaultsFile: string,
): Promise<void> {
  if (range.files.length === 0) return;
  const decoder = startTool(
    engine.tools.binlog,
    engine.clientReplayArgs({
      files: range.files.map((file) => path.join(dir, file)),
      startPosition: range.startPosition,
      stopPosition: range.stopPosition,
      backupGtids: range.backupGtids,
      until: range.untilPosition,
    }),
  );
  decoder.stdin.end();
  const client = startTool(engine.tools.client, [`--defaults-extra-file=${defaultsFile}`, "--binary-mode"]);
  client.stdout.resume();
  const results = await Promise.allSettled([
    pipeline(decoder.stdout, client.stdin),
    decoder.exited,
    client.exited,
  ]);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) {
    throw new RewindError(
      ErrorNames.replay,
      `replaying binlogs failed: ${(failure.reason as Error).message}. The restored datadir holds the backup plus part of the binlogs; restore again once the cause is fixed`,
    );
  }
}
