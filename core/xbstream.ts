import type { Crc32 } from "./crc32.js";
import { ErrorNames } from "./errors.js";

/**
 * An incremental reader of the xbstream framing that xtrabackup and mariabackup write with
 * `--stream=xbstream`. Each chunk: magic `XBSTCK01`, flags (1), type (1: P payload, S sparse,
 * E end of file), path length (4, LE), path; then for P and S: [S: sparse map size (4)],
 * payload size (8), payload offset (8), CRC-32 of sparse map and payload (4), [S: sparse map,
 * 8 bytes an entry], payload.
 *
 * It lets the agent read the small files the backup tool only puts in the stream (such as
 * `xtrabackup_binlog_info`) while the stream passes through, and lets `verify --deep` check the
 * framing and every chunk checksum without extracting anything.
 */
const MAGIC = Buffer.from("XBSTCK01");
const MAX_PATH = 4096;

export interface XbstreamSummary {
  readonly files: number;
  readonly chunks: number;
  readonly payloadBytes: number;
  /** Files that got payload but no end-of-file chunk: the stream was cut short. */
  readonly unterminated: readonly string[];
}

interface ChunkBody {
  readonly path: string;
  remaining: number;
  sparseMapLeft: number;
  readonly expectedCrc: number;
  crc: number;
  readonly startOffset: number;
}

export class XbstreamError extends Error {
  override readonly name = ErrorNames.xbstreamInvalid;
}

export interface XbstreamReaderOptions {
  /** Paths whose whole content to keep in memory (small metadata files). */
  readonly capture?: readonly string[];
  /** Verify each chunk's CRC-32 with this function; skipped when absent. */
  readonly crc32?: Crc32;
}

export class XbstreamReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private files = new Set<string>();
  private open = new Set<string>();
  private chunks = 0;
  private payloadBytes = 0;
  private readonly captureSet: Set<string>;
  private readonly captured = new Map<string, Buffer[]>();
  private body?: ChunkBody;

  constructor(private readonly options: XbstreamReaderOptions = {}) {
    this.captureSet = new Set(options.capture ?? []);
  }

  /** Feeds the next bytes of the stream; throws an XbstreamError on bad framing or checksum. */
  push(data: Buffer): void {
    this.pending.push(data);
    this.pendingBytes += data.length;
    for (;;) {
      if (this.body) {
        if (!this.readBody(this.body)) return;
        continue;
      }
      const buffer = this.peek(14);
      if (!buffer) return;
      if (!buffer.subarray(0, 8).equals(MAGIC)) {
        throw new XbstreamError(
          `bad xbstream chunk magic at stream offset ${this.offset}; the stream is damaged`,
        );
      }
      const type = String.fromCharCode(buffer[9]!);
      const pathLength = buffer.readUInt32LE(10);
      if (pathLength === 0 || pathLength > MAX_PATH) {
        throw new XbstreamError(`implausible path length ${pathLength} at stream offset ${this.offset}`);
      }
      if (type === "E") {
        const chunk = this.peek(14 + pathLength);
        if (!chunk) return;
        const path = chunk.subarray(14, 14 + pathLength).toString();
        this.open.delete(path);
        this.files.add(path);
        this.consume(14 + pathLength);
        this.chunks++;
        continue;
      }
      if (type !== "P" && type !== "S") {
        throw new XbstreamError(
          `unknown xbstream chunk type ${JSON.stringify(type)} at offset ${this.offset}`,
        );
      }
      const sparse = type === "S";
      const headerLength = 14 + pathLength + (sparse ? 4 : 0) + 20;
      const header = this.peek(headerLength);
      if (!header) return;
      let at = 14 + pathLength;
      const sparseEntries = sparse ? header.readUInt32LE(at) : 0;
      if (sparse) at += 4;
      const payloadLength = Number(header.readBigUInt64LE(at));
      const path = header.subarray(14, 14 + pathLength).toString();
      this.body = {
        path,
        remaining: sparseEntries * 8 + payloadLength,
        sparseMapLeft: sparseEntries * 8,
        expectedCrc: header.readUInt32LE(at + 16),
        crc: 0,
        startOffset: this.offset,
      };
      this.files.add(path);
      this.open.add(path);
      this.chunks++;
      this.payloadBytes += payloadLength;
      this.consume(headerLength);
    }
  }

  /** Consumes what has arrived of a chunk's body; true when the body is complete. */
  private readBody(body: ChunkBody): boolean {
    while (body.remaining > 0) {
      const first = this.pending[0];
      if (!first) return false;
      const piece = first.subarray(0, Math.min(first.length, body.remaining));
      if (this.options.crc32) body.crc = this.options.crc32(piece, body.crc);
      const skip = Math.min(piece.length, body.sparseMapLeft);
      body.sparseMapLeft -= skip;
      if (this.captureSet.has(body.path) && piece.length > skip) {
        const parts = this.captured.get(body.path) ?? [];
        parts.push(Buffer.from(piece.subarray(skip)));
        this.captured.set(body.path, parts);
      }
      body.remaining -= piece.length;
      this.consume(piece.length);
    }
    if (this.options.crc32 && body.crc !== body.expectedCrc) {
      throw new XbstreamError(
        `checksum mismatch in ${body.path} (chunk at stream offset ${body.startOffset}); the stream is damaged`,
      );
    }
    this.body = undefined;
    return true;
  }

  /** Call at the end of the stream: a trailing partial chunk means it was truncated. */
  finish(): XbstreamSummary {
    if (this.pendingBytes > 0 || this.body) {
      throw new XbstreamError(
        `the stream ends inside a chunk (${this.pendingBytes} bytes left at offset ${this.offset}); it was truncated`,
      );
    }
    return {
      files: this.files.size,
      chunks: this.chunks,
      payloadBytes: this.payloadBytes,
      unterminated: [...this.open],
    };
  }

  /** Every file path the stream holds, in the order they first appeared. */
  paths(): string[] {
    return [...this.files];
  }

  capturedFile(path: string): string | undefined {
    const parts = this.captured.get(path);
    return parts ? Buffer.concat(parts).toString() : undefined;
  }

  /** The first `length` pending bytes as one buffer, or undefined until that many arrived. */
  private peek(length: number): Buffer | undefined {
    if (this.pendingBytes < length) return undefined;
    if (this.pending[0]!.length < length) {
      const head: Buffer[] = [];
      let size = 0;
      while (size < length) {
        const next = this.pending.shift()!;
        head.push(next);
        size += next.length;
      }
      this.pending.unshift(Buffer.concat(head));
    }
    return this.pending[0]!;
  }

  private consume(length: number): void {
    this.offset += length;
    this.pendingBytes -= length;
    const first = this.pending[0]!;
    if (first.length === length) this.pending.shift();
    else this.pending[0] = first.subarray(length);
  }
}

/** Schemas the server keeps for itself: never a user table. */
const SYSTEM_SCHEMAS = new Set(["mysql", "performance_schema", "sys", "information_schema"]);

/**
 * The user tables (`db.table`) a physical backup holds, from its own file entries: MariaDB's
 * `db/t.frm` for every table (and `db/t.ibd` for InnoDB), MySQL 8's `db/t.ibd` (InnoDB, file per
 * table) and `db/t_NNN.sdi` (MyISAM). Names are decoded from the servers' file name encoding
 * (`@0024` for `$`); partitions (`t#P#p0.ibd`) count as their table, and the servers' own temporary
 * files (`#sql-…`) not at all. Needs no privilege: it reads what the backup tool streamed.
 */
export function tablesInStream(paths: readonly string[]): string[] {
  const decode = (name: string) =>
    name.replace(/@([0-9a-f]{4})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const tables = new Set<string>();
  for (const path of paths) {
    // An incremental stream holds an InnoDB file as `<file>.delta` and `<file>.meta`.
    const match = /^(?:\.\/)?([^/]+)\/([^/]+)\.(frm|ibd|sdi|MYD|MAD|CSV)(?:\.delta|\.meta)?$/.exec(path);
    if (!match) continue;
    const [, schema, file, extension] = match as unknown as [string, string, string, string];
    if (SYSTEM_SCHEMAS.has(schema) || file.startsWith("#")) continue;
    let table = file.replace(/#[Pp]#.*$/, "");
    // MySQL names a MyISAM table's SDI file `<table>_<id>.sdi`.
    if (extension === "sdi") table = table.replace(/_\d+$/, "");
    tables.add(`${decode(schema)}.${decode(table)}`);
  }
  return [...tables].sort();
}
