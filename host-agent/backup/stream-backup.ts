import { createWriteStream } from "node:fs";
import { Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { KeyringNode } from "@aws-crypto/client-node";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { StreamBlocks } from "../../core/stream-blocks.js";
import { XbstreamReader } from "../../core/xbstream.js";
import { cachedDataKeys, encryptingStream, FRAME_LENGTH } from "../encryption.js";
import { PipelineSupervisor } from "../pipeline.js";
import { startTool } from "../tool.js";
import { BlockEncoder, BlockStageError } from "./block-encoder.js";

export interface StreamBackupOptions {
  readonly tool: string;
  /** Full argument list; the defaults file comes first. */
  readonly toolArgs: readonly string[];
  readonly completedMarker: string;
  readonly toolLogFile: string;
  readonly compressionLevel: number;
  readonly compressionThreads: number;
  /** Raw bytes per stored block (core/stream-blocks.ts). */
  readonly blockSize: number;
  readonly keyring: KeyringNode;
  readonly encryptionContext: Record<string, string>;
  /** Receives the stored (compressed, encrypted) stream. */
  readonly sink: Writable;
  /** Small files to read out of the xbstream as it passes. */
  readonly captureFiles: readonly string[];
  readonly onRawBytes?: (bytes: number) => void;
  readonly signal?: AbortSignal;
}

export interface StreamBackupResult {
  readonly rawBytes: number;
  readonly captured: ReadonlyMap<string, string>;
  /** Every file path the stream holds (the tables it backs up are read from them). */
  readonly paths: readonly string[];
  /** Where each file's chunks are in the stored stream. */
  readonly blocks: StreamBlocks;
}

function* frames(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += FRAME_LENGTH) yield bytes.subarray(at, at + FRAME_LENGTH);
}

/** The backup's stages, in the data's path. */
const STAGES = ["tool", "zstd", "encryption", "upload"] as const;
type StageName = (typeof STAGES)[number];

const STAGE_ERRORS: Record<StageName, string> = {
  tool: ErrorNames.backupTool,
  zstd: ErrorNames.compression,
  encryption: ErrorNames.encryption,
  upload: ErrorNames.upload,
};

/**
 * backup tool → (count, read metadata) → blocks: zstd → encryption → sink (block-encoder.ts).
 * Every stage is watched: if
 * any one fails, the others are stopped and the error names the stage that failed first in the
 * data's path, with the tail of its stderr (never "success" after a failed tool: xtrabackup#894).
 */
export async function streamBackup(options: StreamBackupOptions): Promise<StreamBackupResult> {
  const toolLog = createWriteStream(options.toolLogFile, { mode: 0o600 });
  const tool = startTool(options.tool, options.toolArgs, {
    onStderr: (chunk) => toolLog.write(chunk),
    check: (stderr) =>
      stderr.toString().includes(options.completedMarker)
        ? undefined
        : `${options.tool} exited 0 without "${options.completedMarker}"`,
  });
  tool.stdin.end();
  // One data key serves every block's message (one KMS GenerateDataKey, not one per block).
  const materials = cachedDataKeys(options.keyring);
  const encoder = new BlockEncoder({
    blockSize: options.blockSize,
    // One ended block is compressed and written while the next fills.
    inFlight: 1,
    // Jobs of an eighth of a block: zstd's own job size at high levels is larger than a block,
    // which would leave its threads idle but one.
    startZstd: () =>
      startTool("zstd", [
        `-${options.compressionLevel}`,
        `-T${options.compressionThreads}`,
        `-B${Math.max(1024 * 1024, Math.floor(options.blockSize / 8))}`,
        "-q",
        "-c",
        "-",
      ]),
    encrypt: (compressed) => {
      const message = encryptingStream(materials, options.encryptionContext, compressed.length);
      // In frames: each is a turn of the event loop, not one stall the size of a block.
      Readable.from(frames(compressed)).pipe(message);
      return message;
    },
    sink: options.sink,
    onFailure: (error) => fail(error.stage, error.cause),
  });

  // The first failure is the cause; what fails after everything is stopped is a consequence.
  const supervisor = new PipelineSupervisor<StageName>(STAGES, () => {
    tool.stop();
    encoder.stop();
    options.sink.destroy(new Error("backup stopped"));
  });
  const fail = (stage: StageName, error: Error) => supervisor.fail(stage, error);
  const reader = new XbstreamReader({ capture: options.captureFiles });
  let rawBytes = 0;
  const inspect = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      rawBytes += chunk.length;
      options.onRawBytes?.(rawBytes);
      try {
        reader.push(chunk);
      } catch (error) {
        fail("tool", error as Error);
        callback(error as Error);
        return;
      }
      callback(null, chunk);
    },
  });

  const onAbort = () => fail("tool", new Error("the agent was interrupted"));
  options.signal?.addEventListener("abort", onAbort, { once: true });
  options.sink.once("error", (error: Error) => fail("upload", error));

  const settled = await Promise.allSettled([
    supervisor.watch("tool", tool.exited),
    // Broken pipes show up as the failure of the process on either side of them.
    pipeline(tool.stdout, inspect, encoder).catch((error: Error) => {
      if (error instanceof BlockStageError) fail(error.stage, error.cause);
      throw error;
    }),
  ]);
  options.signal?.removeEventListener("abort", onAbort);
  await new Promise((resolve) => toolLog.end(resolve));

  if (options.signal?.aborted) {
    throw new RewindError(ErrorNames.interrupted, "the backup was interrupted; no manifest was written");
  }
  const cause = supervisor.cause();
  if (cause) {
    throw new RewindError(
      STAGE_ERRORS[cause.stage],
      `the backup failed in stage "${cause.stage}": ${cause.error.message.split("\n")[0]}; no manifest was written, so this backup will never be used`,
      supervisor
        .failures()
        .map((failure) => `${failure.stage}: ${failure.error.message}`)
        .join("\n"),
    );
  }
  const broken = settled.find((result) => result.status === "rejected");
  if (broken) {
    throw new RewindError(ErrorNames.upload, `the backup stream broke: ${(broken.reason as Error).message}`);
  }
  try {
    reader.finish();
  } catch (error) {
    throw new RewindError(
      ErrorNames.backupTool,
      `the backup stream is malformed: ${(error as Error).message}`,
    );
  }
  const captured = new Map<string, string>();
  for (const file of options.captureFiles) {
    const content = reader.capturedFile(file);
    if (content !== undefined) captured.set(file, content);
  }
  return { rawBytes, captured, paths: reader.paths(), blocks: encoder.index() };
}
