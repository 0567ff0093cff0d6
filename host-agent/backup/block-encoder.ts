import { once } from "node:events";
import type { Readable } from "node:stream";
import { Writable } from "node:stream";
import type { StreamBlocks } from "../../core/stream-blocks.js";
import type { ToolProcess } from "../tool.js";

/** Resolves when `sink` drains or closes, leaving no listener behind. */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off("drain", done);
      sink.off("close", done);
      resolve();
    };
    sink.on("drain", done);
    sink.on("close", done);
  });
}

/** Which stage of the data path an encoder failure belongs to. */
export class BlockStageError extends Error {
  constructor(
    readonly stage: "zstd" | "encryption" | "upload",
    override readonly cause: Error,
  ) {
    super(cause.message);
  }
}

interface OpenBlock {
  readonly zstd: ToolProcess;
  readonly output: Promise<Buffer>;
  readonly files: Set<string>;
  rawBytes: number;
}

/**
 * The redo log the backup tool streams while it copies (mariabackup's ib_logfile0, xtrabackup's
 * xtrabackup_logfile): its own lane of blocks, so the data files' blocks hold none of it.
 */
const REDO_FILES = new Set(["ib_logfile0", "xtrabackup_logfile"]);
type Lane = "redo" | "data";

const MAGIC_LENGTH = 8;

const FIXED_HEADER = 14;

/**
 * Writes the backup tool's xbstream as independently decodable blocks (core/stream-blocks.ts):
 * whole chunks go to the block of their lane (the redo log's, or the data files'), a lane's block
 * ends at the first chunk after `blockSize` bytes; each block is compressed by its own zstd (one
 * frame), encrypted as one message, and written to `sink` when it ends. Up to `inFlight` ended
 * blocks are compressed and encrypted while the next ones fill, so a cut does not stall the tool.
 * Records which blocks hold each file, numbered in the order they are written.
 */
export class BlockEncoder extends Writable {
  private readonly rawSizes: number[] = [];
  private readonly storedSizes: number[] = [];
  private readonly files = new Map<string, [number, number][]>();
  private readonly lanes = new Map<Lane, OpenBlock>();
  /** The lane of the chunk whose body is passing. */
  private lane: Lane = "data";
  private readonly sealed: Promise<void>[] = [];
  /** The blocks' writes to the sink, in order. */
  private written: Promise<void> = Promise.resolve();
  private readonly zstds = new Set<ToolProcess>();
  private stopped = false;
  private sealedBlocks = 0;
  // The xbstream framing: bytes of the current chunk's body still to come, the header so far.
  private bodyLeft = 0;
  private header: Buffer = Buffer.alloc(0);

  constructor(
    private readonly options: {
      readonly blockSize: number;
      readonly inFlight: number;
      readonly startZstd: () => ToolProcess;
      /** The block's message, streamed (so no block stalls the event loop). */
      readonly encrypt: (compressed: Buffer) => Readable;
      readonly sink: Writable;
      readonly onFailure?: (error: BlockStageError) => void;
    },
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  /** The index for the manifest; complete once the encoder has finished. */
  index(): StreamBlocks {
    return {
      rawBytes: [...this.rawSizes],
      storedBytes: [...this.storedSizes],
      files: Object.fromEntries(this.files),
    };
  }

  /** Kills the block compressors (the pipeline failed elsewhere). */
  stop(): void {
    this.stopped = true;
    for (const zstd of this.zstds) {
      zstd.stop();
      zstd.stdout.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.consume(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      if (this.bodyLeft > 0 || this.header.length > 0)
        throw new Error("the backup stream ended inside an xbstream chunk");
      for (const block of this.lanes.values()) this.seal(block);
      this.lanes.clear();
      await Promise.all(this.sealed);
      await this.written;
      this.options.sink.end();
      await once(this.options.sink, "finish");
    })().then(() => callback(), callback);
  }

  private async consume(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, rest.length);
        await this.feed(rest.subarray(0, n));
        this.bodyLeft -= n;
        rest = rest.subarray(n);
        continue;
      }
      const needed = this.headerLength(Buffer.concat([this.header, rest.subarray(0, 64 * 1024)]));
      if (needed === undefined) {
        this.header = Buffer.concat([this.header, rest]);
        return;
      }
      const take = needed - this.header.length;
      const header = Buffer.concat([this.header, rest.subarray(0, take)]);
      this.header = Buffer.alloc(0);
      rest = rest.subarray(take);
      const path = header.subarray(FIXED_HEADER, FIXED_HEADER + header.readUInt32LE(10)).toString("utf8");
      this.lane = REDO_FILES.has(path) ? "redo" : "data";
      // At a chunk's header: its lane's block, if full, ends before it.
      const full = this.lanes.get(this.lane);
      if (full && full.rawBytes >= this.options.blockSize) {
        this.lanes.delete(this.lane);
        // Bounded memory: the oldest ended blocks are written before another ends (each had the
        // time this one took to fill).
        while (this.sealed.length >= this.options.inFlight) await this.sealed.shift();
        this.seal(full);
      }
      await this.feed(header);
      this.lanes.get(this.lane)!.files.add(path);
      this.bodyLeft = this.bodyLength(header);
    }
  }

  /** The whole header's length once enough of it is here (the framing of core/xbstream.ts). */
  private headerLength(bytes: Buffer): number | undefined {
    if (bytes.length < FIXED_HEADER) return undefined;
    if (bytes.subarray(0, MAGIC_LENGTH).toString("latin1") !== "XBSTCK01")
      throw new BlockStageError("zstd", new Error("bad xbstream chunk magic in the backup stream"));
    const type = String.fromCharCode(bytes[9]!);
    const pathLength = bytes.readUInt32LE(10);
    const sizes = type === "P" ? 20 : type === "S" ? 24 : type === "E" ? 0 : -1;
    if (sizes < 0)
      throw new BlockStageError("zstd", new Error(`unknown xbstream chunk type ${JSON.stringify(type)}`));
    const length = FIXED_HEADER + pathLength + sizes;
    return bytes.length >= length ? length : undefined;
  }

  private bodyLength(header: Buffer): number {
    const type = String.fromCharCode(header[9]!);
    const at = FIXED_HEADER + header.readUInt32LE(10);
    if (type === "P") return Number(header.readBigUInt64LE(at));
    if (type === "S") return header.readUInt32LE(at) * 8 + Number(header.readBigUInt64LE(at + 4));
    return 0;
  }

  private async feed(bytes: Buffer): Promise<void> {
    if (this.stopped) throw new Error("the backup was stopped");
    let block = this.lanes.get(this.lane);
    if (!block) {
      block = this.open();
      this.lanes.set(this.lane, block);
    }
    block.rawBytes += bytes.length;
    if (!block.zstd.stdin.write(bytes)) await Promise.race([once(block.zstd.stdin, "drain"), block.output]);
  }

  private open(): OpenBlock {
    const zstd = this.options.startZstd();
    this.zstds.add(zstd);
    const parts: Buffer[] = [];
    zstd.stdout.on("data", (part: Buffer) => parts.push(part));
    const output = zstd.exited
      .then(() => Buffer.concat(parts))
      .catch((error: Error) => {
        throw new BlockStageError("zstd", error);
      })
      .finally(() => this.zstds.delete(zstd));
    // A failing compressor is the pipeline's failure at once, not when its block is sealed.
    output.catch((error: BlockStageError) => this.options.onFailure?.(error));
    return { zstd, output, files: new Set(), rawBytes: 0 };
  }

  private seal(block: OpenBlock): void {
    // Numbered in the order blocks are written (sealed), whatever their lane.
    const index = this.sealedBlocks++;
    for (const file of block.files) {
      const runs = this.files.get(file);
      const last = runs?.at(-1);
      if (last && last[1] === index - 1) last[1] = index;
      else if (runs) runs.push([index, index]);
      else this.files.set(file, [[index, index]]);
    }
    block.zstd.stdin.end();
    const written = this.written.then(async () => {
      const compressed = await block.output;
      const sink = this.options.sink;
      let stored = 0;
      try {
        // Read to its end even once the sink is gone: the Encryption SDK's stream must not be
        // destroyed early (see encryptInto).
        for await (const chunk of this.options.encrypt(compressed) as AsyncIterable<Buffer>) {
          stored += chunk.length;
          if (sink.destroyed) continue;
          if (!sink.write(chunk)) await drained(sink);
        }
      } catch (error) {
        throw new BlockStageError("encryption", error as Error);
      }
      if (sink.destroyed) throw new BlockStageError("upload", new Error("the upload was stopped"));
      this.rawSizes[index] = block.rawBytes;
      this.storedSizes[index] = stored;
    });
    this.written = written;
    written.catch(() => {});
    this.sealed.push(written);
  }
}
