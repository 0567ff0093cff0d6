import { Writable } from "node:stream";
import zlib from "node:zlib";
import { type Crc32, crc32 as jsCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { BackupManifest } from "../../core/manifest.js";
import { readBackupChain, readBackupManifest } from "../../core/store/backup-manifest.js";
import { checkStoredObjects } from "../../core/store/segment-check.js";
import { XbstreamReader, type XbstreamSummary } from "../../core/xbstream.js";
import { s3Client } from "../clients.js";
import type { AgentContext } from "../context.js";
import { dataKeyring } from "../encryption.js";
import { Progress } from "../log.js";
import { decodeStream } from "../restore/decode.js";
import { backupStream } from "../restore/download.js";

export interface VerifyResult {
  readonly backupId: string;
  readonly ok: boolean;
  readonly deep: boolean;
  readonly segments: number;
  readonly storedBytes: number;
  readonly problems: string[];
  /** An incremental's chain, full backup first: every link's objects checked. */
  readonly chain?: string[];
  readonly stream?: XbstreamSummary;
}

const nativeCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;

/** Downloads and re-hashes everything, decrypts it, and checks the zstd and xbstream framing. */
async function checkContent(context: AgentContext, manifest: BackupManifest): Promise<XbstreamSummary> {
  const reader = new XbstreamReader({ crc32: nativeCrc32 ?? jsCrc32 });
  const progress = new Progress(`verify ${manifest.backupId}`);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        reader.push(chunk);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  await decodeStream(backupStream(manifest), {
    client: s3Client(context.config),
    bucket: context.config.bucket,
    keyring: dataKeyring(context.config).keyring,
    concurrency: context.config.backup.uploadConcurrency,
    sink,
    onBytes: (bytes) => {
      progress.update(bytes);
      context.heartbeat();
    },
  });
  progress.done();
  const summary = reader.finish();
  if (summary.unterminated.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `the backup stream ends with files left open: ${summary.unterminated.join(", ")}`,
    );
  }
  return summary;
}

/** `rewind-agent verify --backup-id ID [--deep]`. A failed check is an error (VerifyFailed). */
export async function verify(context: AgentContext, backupId: string, deep: boolean): Promise<VerifyResult> {
  const manifest = await readBackupManifest(
    s3Client(context.config),
    context.config.bucket,
    context.location,
    backupId,
  );
  // An incremental is only as good as its chain: every link present, fitting, and stored as its
  // manifest says (--deep decodes this backup's own stream).
  const chain = await readBackupChain(
    s3Client(context.config),
    context.config.bucket,
    context.location,
    manifest,
  );
  const problems = chain.complete ? [] : [`its chain needs ${chain.missing}: ${chain.reason}`];
  for (const link of chain.links) {
    problems.push(
      ...(await checkStoredObjects(s3Client(context.config), context.config.bucket, link.segments)),
    );
  }
  let stream: XbstreamSummary | undefined;
  if (deep && problems.length === 0) {
    try {
      stream = await checkContent(context, manifest);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `backup ${backupId} failed verification: ${problems.join("; ")}`,
      problems.join("\n"),
    );
  }
  return {
    backupId,
    ok: true,
    deep,
    segments: manifest.segments.length,
    storedBytes: manifest.storedBytes,
    ...(chain.links.length > 1 ? { chain: chain.links.map((link) => link.backupId) } : {}),
    problems,
    ...(stream ? { stream } : {}),
  };
}
