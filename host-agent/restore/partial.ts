import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { EVENT_HEADER_LENGTH, EventType } from "../../core/binlog/events.js";
import { ErrorNames, RewindError } from "../../core/errors.js";

/**
 * A partial table restore (issue 21): of the backup's stream, only what the chosen tables need
 * reaches the scratch datadir, and only their transactions are replayed.
 *
 * Kept: every file outside the user schemas (the system tablespace, undo and redo, the `mysql`
 * and `sys` schemas, Aria's logs, the backup tool's own files), every table definition and schema
 * option file (small: the server knows every table, whose data it does not have), and the chosen
 * tables' data files (`t.ibd`, `t.new`, partitions `t#P#p0.ibd`, MyISAM and Aria files).
 * Dropped: the data files of every other user table. A table in the system tablespace is restored
 * too, since the system tablespace is kept.
 */
export interface PartialSelection {
  /** `db.t` names, and `db` alone for `db.*`. */
  readonly tables: readonly { readonly database: string; readonly table?: string }[];
}

const SYSTEM_SCHEMAS = new Set(["mysql", "sys", "performance_schema"]);
/** Table data files, which a partial restore keeps for the chosen tables only. */
const DATA_FILE = /\.(ibd|new|isl|MYD|MYI|MAD|MAI|CSV|CSM|ARZ)$/i;

/** Whether the backup's file at `path` (`db/t.ibd`, `ibdata1`) is needed for the chosen tables. */
export function partialKeep(selection: PartialSelection): (path: string) => boolean {
  const databases = new Set(selection.tables.filter((t) => !t.table).map((t) => fileName(t.database)));
  const tables = new Set(
    selection.tables.filter((t) => t.table).map((t) => `${fileName(t.database)}/${fileName(t.table!)}`),
  );
  return (streamPath) => {
    // An incremental holds an InnoDB file's changed pages as `<file>.delta` and `<file>.meta`:
    // they go where the file goes.
    const path = streamPath.replace(/\.(delta|meta)$/, "");
    const slash = path.indexOf("/");
    if (slash < 0) return true;
    const database = path.slice(0, slash);
    if (SYSTEM_SCHEMAS.has(database) || databases.has(database)) return true;
    if (!DATA_FILE.test(path)) return true;
    const file = path.slice(slash + 1);
    // The table a data file belongs to: `t.ibd`, and each partition `t#P#p0.ibd` (`#p#` on
    // case-insensitive file systems).
    const table = file.replace(/\.[^.]+$/, "").replace(/#[Pp]#.*$/, "");
    return tables.has(`${database}/${table}`);
  };
}

/**
 * A schema or table name as the server names its files: characters other than letters, digits
 * and `_` become `@` and four hex digits (`a$b` → `a@0024b`). Table selectors allow `$` besides.
 */
export function fileName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, (c) => `@${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** What the filter passed and dropped. */
export interface PartialStats {
  keptBytes: number;
  droppedBytes: number;
  keptFiles: number;
  droppedFiles: number;
  /**
   * The raw bytes of the blocks not fetched at all (a backup stored in blocks): the filter never
   * saw them. With droppedBytes, what the partial copy left out.
   */
  notFetchedBytes: number;
  /** The stored bytes fetched, of storedBytes. */
  fetchedStoredBytes: number;
  storedBytes: number;
  /**
   * Renames the backup tool recorded (`db/t.ren`: a table renamed while the backup ran). The
   * prepare applies them by name, which a partial copy cannot follow safely: it falls back.
   */
  renames: string[];
}

export function noPartialStats(): PartialStats {
  return {
    keptBytes: 0,
    droppedBytes: 0,
    keptFiles: 0,
    droppedFiles: 0,
    notFetchedBytes: 0,
    fetchedStoredBytes: 0,
    storedBytes: 0,
    renames: [],
  };
}

/** What several filters (one per link of a chain) passed and dropped, together. */
export function addPartialStats(sum: PartialStats, each: PartialStats): PartialStats {
  return {
    keptBytes: sum.keptBytes + each.keptBytes,
    droppedBytes: sum.droppedBytes + each.droppedBytes,
    keptFiles: sum.keptFiles + each.keptFiles,
    droppedFiles: sum.droppedFiles + each.droppedFiles,
    notFetchedBytes: sum.notFetchedBytes + each.notFetchedBytes,
    fetchedStoredBytes: sum.fetchedStoredBytes + each.fetchedStoredBytes,
    storedBytes: sum.storedBytes + each.storedBytes,
    renames: [...sum.renames, ...each.renames],
  };
}

const MAGIC = Buffer.from("XBSTCK01");

/**
 * Passes the xbstream chunks of the files `keep` accepts and drops the others, whole: the framing
 * of each chunk (magic, flags, type, path; for payload and sparse chunks their sizes, offset,
 * checksum, sparse map and payload, core/xbstream.ts) is read, never changed. Any chunk that does
 * not start with the magic fails the stream.
 */
export class XbstreamFilter extends Transform {
  readonly stats: PartialStats = noPartialStats();
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current chunk's body still to pass (or drop). */
  private bodyLeft = 0;
  private keeping = true;
  private readonly seen = new Set<string>();

  constructor(readonly keep: (path: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.pending = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
      this.drain();
      done();
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.pending.length > 0 || this.bodyLeft > 0) {
      done(new RewindError(ErrorNames.xbstreamInvalid, "the backup stream ended inside an xbstream chunk"));
      return;
    }
    done();
  }

  private forward(bytes: Buffer): void {
    if (this.keeping) {
      this.stats.keptBytes += bytes.length;
      this.push(bytes);
    } else {
      this.stats.droppedBytes += bytes.length;
    }
  }

  private drain(): void {
    for (;;) {
      if (this.bodyLeft > 0) {
        if (this.pending.length === 0) return;
        const n = Math.min(this.bodyLeft, this.pending.length);
        this.forward(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.bodyLeft -= n;
        continue;
      }
      if (this.pending.length < 14) return;
      if (!this.pending.subarray(0, 8).equals(MAGIC)) {
        throw new RewindError(
          ErrorNames.xbstreamInvalid,
          "bad xbstream chunk magic: the backup stream is damaged",
        );
      }
      const type = String.fromCharCode(this.pending[9]!);
      const pathLength = this.pending.readUInt32LE(10);
      // Payload and sparse chunks carry sizes after the path: [sparse map entries (4)], payload
      // size (8), offset (8), checksum (4).
      const sizes = type === "P" ? 20 : type === "S" ? 24 : type === "E" ? 0 : -1;
      if (sizes < 0) {
        throw new RewindError(
          ErrorNames.xbstreamInvalid,
          `unknown xbstream chunk type ${JSON.stringify(type)}`,
        );
      }
      const headerLength = 14 + pathLength + sizes;
      if (this.pending.length < headerLength) return;
      const path = this.pending.subarray(14, 14 + pathLength).toString("utf8");
      if (!this.seen.has(path)) {
        this.seen.add(path);
        this.keeping = this.keep(path);
        if (this.keeping) this.stats.keptFiles += 1;
        else this.stats.droppedFiles += 1;
        if (path.endsWith(".ren")) this.stats.renames.push(path);
      } else {
        this.keeping = this.keep(path);
      }
      let body = 0;
      if (type === "P") body = Number(this.pending.readBigUInt64LE(14 + pathLength));
      if (type === "S") {
        const sparseEntries = this.pending.readUInt32LE(14 + pathLength);
        body = sparseEntries * 8 + Number(this.pending.readBigUInt64LE(14 + pathLength + 4));
      }
      this.forward(this.pending.subarray(0, headerLength));
      this.pending = this.pending.subarray(headerLength);
      this.bodyLeft = body;
    }
  }
}

/** A partial table restore that turned out impossible: the caller restores the whole backup. */
export class PartialRestoreImpossible extends Error {
  override readonly name = "PartialRestoreImpossible";
}

/** What the applier replays of the binlogs: transactions on these tables only. */
export interface ReplicationFilter {
  /** `db.t` names. */
  readonly doTables: readonly string[];
  /** `db.%` patterns (a whole schema). */
  readonly wildDoTables: readonly string[];
}

/** The applier's replication filter for the chosen tables (`db.t` names, `db.%` patterns). */
export function replicationFilter(selection: PartialSelection): ReplicationFilter {
  return {
    doTables: selection.tables.filter((t) => t.table).map((t) => `${t.database}.${t.table}`),
    wildDoTables: selection.tables.filter((t) => !t.table).map((t) => `${t.database}.%`),
  };
}

/** MariaDB's QUERY_COMPRESSED_EVENT: a statement whose text is zlib-compressed (log_bin_compress). */
const QUERY_COMPRESSED = 165;

/**
 * The first statement event (DDL, or a statement-logged DML) from `startPosition` in the first
 * file on whose text `pattern` matches, read straight from the binlog files (event headers and
 * query events only; row events are skipped by their size). A compressed or encrypted statement
 * cannot be read, so it counts as a match: the caller then takes the safe path.
 */
export function findStatement(
  files: readonly string[],
  startPosition: number,
  pattern: RegExp,
): string | undefined {
  const header = Buffer.alloc(EVENT_HEADER_LENGTH);
  for (const [index, file] of files.entries()) {
    const fd = openSync(file, "r");
    try {
      const size = fstatSync(fd).size;
      let at = index === 0 ? startPosition : 4;
      while (at + EVENT_HEADER_LENGTH <= size) {
        readSync(fd, header, 0, EVENT_HEADER_LENGTH, at);
        const type = header[4]!;
        const length = header.readUInt32LE(9);
        if (length < EVENT_HEADER_LENGTH) break;
        if (type === EventType.mariadbStartEncryption) return "an encrypted binlog";
        if (type === QUERY_COMPRESSED) return "a compressed statement";
        if (type === EventType.query) {
          const body = Buffer.alloc(length - EVENT_HEADER_LENGTH);
          readSync(fd, body, 0, body.length, at + EVENT_HEADER_LENGTH);
          // Post-header: thread id (4), exec time (4), db length (1), error code (2), status vars length (2).
          const text = body.subarray(13 + body.readUInt16LE(11) + body[8]! + 1).toString("latin1");
          const match = pattern.exec(text);
          if (match) return match[0];
        }
        at += length;
      }
    } finally {
      closeSync(fd);
    }
  }
  return undefined;
}
