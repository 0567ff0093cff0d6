import { z } from "zod";
import { ErrorNames, RewindError } from "./errors.js";

/**
 * A backup's stored stream in blocks (issue 21): the xbstream is cut at chunk boundaries into
 * blocks of about `backup.blockSizeMiB`, and each block is compressed (one zstd frame) and
 * encrypted (one Encryption SDK message) on its own, one after the other in the stored stream.
 * So any block decodes without the ones before it, and the index says which blocks hold each
 * file: a table restore fetches the system's files and the chosen tables' blocks, not the whole
 * backup.
 *
 * The redo log's chunks, which the backup tool writes all along the stream while it copies the
 * data files, go to blocks of their own (lanes, host-agent/backup/block-encoder.ts): otherwise
 * every block would hold some redo, which every restore needs. Concatenated, the blocks'
 * plaintexts are the tool's stream with each file's chunks in their order (what mbstream and
 * xbstream need), the redo's moved apart from the data files'.
 *
 * Manifests without an index (agents before it) hold one stream: one zstd stream in one message.
 */
export const StreamBlocks = z
  .object({
    /** Each block's bytes of xbstream, in order. */
    rawBytes: z.array(z.number().int().positive()).min(1),
    /** Each block's stored (compressed, encrypted) bytes, in order; they add up to storedBytes. */
    storedBytes: z.array(z.number().int().positive()).min(1),
    /** Each file of the stream: the runs of blocks (first, last) that hold its chunks. */
    files: z.record(
      z.string(),
      z.array(z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])).min(1),
    ),
  })
  .refine((blocks) => blocks.rawBytes.length === blocks.storedBytes.length, {
    message: "rawBytes and storedBytes must list the same blocks",
  })
  .refine(
    (blocks) =>
      Object.values(blocks.files).every((runs) =>
        runs.every(([first, last]) => first <= last && last < blocks.storedBytes.length),
      ),
    { message: "a file's block range lies outside the blocks" },
  );
export type StreamBlocks = z.infer<typeof StreamBlocks>;

/** A run of the stored stream: `length` bytes from `offset`. */
export interface StoredRange {
  readonly offset: number;
  readonly length: number;
  /** The stored size of each block in the run, in order. */
  readonly blocks: readonly number[];
}

export interface BlockSelection {
  /** The stored stream's runs to fetch, in order: adjacent chosen blocks are one run. */
  readonly ranges: readonly StoredRange[];
  readonly blocks: number;
  readonly storedBytes: number;
  readonly rawBytes: number;
}

/**
 * The blocks holding a chunk of any file `keep` accepts, as runs of the stored stream. Every chunk
 * of a kept file lies in its blocks, so the chosen blocks hold whole files; chunks of other files
 * in them are dropped by the xbstream filter after decoding.
 */
export function selectBlocks(blocks: StreamBlocks, keep: (path: string) => boolean): BlockSelection {
  const chosen = new Array<boolean>(blocks.storedBytes.length).fill(false);
  for (const [file, runs] of Object.entries(blocks.files)) {
    if (!keep(file)) continue;
    for (const [first, last] of runs) for (let block = first; block <= last; block++) chosen[block] = true;
  }
  const ranges: { offset: number; length: number; blocks: number[] }[] = [];
  let offset = 0;
  let storedBytes = 0;
  let rawBytes = 0;
  let count = 0;
  for (const [index, size] of blocks.storedBytes.entries()) {
    if (chosen[index]) {
      const last = ranges.at(-1);
      if (last && last.offset + last.length === offset) {
        last.length += size;
        last.blocks.push(size);
      } else {
        ranges.push({ offset, length: size, blocks: [size] });
      }
      storedBytes += size;
      rawBytes += blocks.rawBytes[index]!;
      count += 1;
    }
    offset += size;
  }
  return { ranges, blocks: count, storedBytes, rawBytes };
}

/** Checks an index against its manifest's sizes: a damaged index must not pick the wrong bytes. */
export function checkBlocks(
  blocks: StreamBlocks,
  sizes: { rawBytes: number; storedBytes: number },
  where: string,
): void {
  const stored = blocks.storedBytes.reduce((sum, size) => sum + size, 0);
  const raw = blocks.rawBytes.reduce((sum, size) => sum + size, 0);
  if (stored !== sizes.storedBytes || raw !== sizes.rawBytes) {
    throw new RewindError(
      ErrorNames.verify,
      `${where}: its block index adds up to ${stored} stored and ${raw} raw bytes, the manifest says ${sizes.storedBytes} and ${sizes.rawBytes}; the manifest is damaged`,
    );
  }
}

/** The whole stream as one run (a whole restore, a deep verify). */
export function allBlocks(blocks: StreamBlocks): StoredRange {
  return {
    offset: 0,
    length: blocks.storedBytes.reduce((sum, size) => sum + size, 0),
    blocks: blocks.storedBytes,
  };
}
