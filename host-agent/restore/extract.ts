import { mkdirSync, readdirSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { BackupManifest } from "../../core/manifest.js";
import type { Engine } from "../engines/engine.js";
import { startTool } from "../tool.js";
import { blocksToFetch, decodeStream } from "./decode.js";
import { backupStream } from "./download.js";
import type { XbstreamFilter } from "./partial.js";

export interface ExtractOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly keyring: KeyringNode;
  readonly engine: Engine;
  /** A staging directory, never a live datadir: it must be empty. */
  readonly targetDir: string;
  readonly concurrency: number;
  readonly onBytes?: (bytes: number) => void;
  /** Only the files this passes reach the directory (a partial table restore). */
  readonly filter?: XbstreamFilter;
}

/** The stored bytes extracting `manifest` fetches: the blocks holding what `keep` accepts, or all. */
export function storedBytesToExtract(manifest: BackupManifest, keep?: (path: string) => boolean): number {
  return blocksToFetch(backupStream(manifest), keep)?.storedBytes ?? manifest.storedBytes;
}

/**
 * Downloads, verifies, decrypts and decompresses a backup and unpacks it with xbstream/mbstream
 * into a staging directory. The caller prepares it and only then moves it anywhere near a datadir.
 */
export async function extractBackup(manifest: BackupManifest, options: ExtractOptions): Promise<void> {
  mkdirSync(options.targetDir, { recursive: true });
  if (readdirSync(options.targetDir).length > 0) {
    throw new RewindError(ErrorNames.usage, `staging directory ${options.targetDir} is not empty`);
  }
  const stream = startTool(options.engine.tools.stream, ["-x", "-C", options.targetDir]);
  if (!options.filter) {
    await decodeStream(backupStream(manifest), { ...options, sink: stream.stdin, sinkDone: stream.exited });
    return;
  }
  const filtered = pipeline(options.filter, stream.stdin);
  const selection = blocksToFetch(backupStream(manifest), options.filter.keep);
  options.filter.stats.storedBytes += manifest.storedBytes;
  options.filter.stats.fetchedStoredBytes += selection?.storedBytes ?? manifest.storedBytes;
  options.filter.stats.notFetchedBytes += manifest.rawBytes - (selection?.rawBytes ?? manifest.rawBytes);
  await decodeStream(backupStream(manifest), {
    ...options,
    keep: options.filter.keep,
    sink: options.filter,
    sinkDone: Promise.all([filtered, stream.exited]).then(() => undefined),
  });
}
