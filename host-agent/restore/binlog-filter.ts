import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { BINLOG_MAGIC, EVENT_HEADER_LENGTH, EventType } from "../../core/binlog/events.js";
import { fastCrc32 } from "../../core/crc32.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { ReplicationFilter } from "./partial.js";

/** MariaDB event types a row-based transaction on other tables is made of (log_event.h). */
const TABLE_MAP = 19;
const ROW_EVENTS = new Set([
  // WRITE/UPDATE/DELETE_ROWS_EVENT_V1, and the v2 numbers MySQL uses.
  23,
  24,
  25,
  30,
  31,
  32,
  // MariaDB's compressed row events (log_bin_compress): 166–171.
  166,
  167,
  168,
  169,
  170,
  171,
  EventType.mariadbAnnotateRows,
]);
/** FL_STANDALONE in a MariaDB GTID event's flags: a statement with no transaction (DDL). */
const STANDALONE = 1;

export interface BinlogFilterResult {
  readonly keptTransactions: number;
  readonly droppedTransactions: number;
  readonly droppedBytes: number;
  /** The position in the original file of a position in the filtered one. */
  readonly originalPosition: (position: number) => number;
}

/**
 * A partial table restore's binlogs, before the applier sees them (MariaDB): a copy of `input`
 * without the transactions its replication filter would skip anyway, so the applier reads the
 * chosen tables' transactions instead of every one (issue 21: a filtered-out transaction costs
 * the applier as much as an applied one: relay log, scheduling, its GTID committed to
 * mysql.gtid_slave_pos).
 *
 * Dropped: a transaction (GTID event … XID or COMMIT) made only of table maps, row events and
 * annotations, whose every table map names a table the filter does not replicate. Everything else
 * is copied as it is and still goes through the applier's own filter (replicate_do_table and
 * replicate_wild_do_table): statements and DDL, anything unknown, the events outside transactions,
 * everything before `startPosition` (where the applier starts, found by its GTID), and the
 * transactions whose GTIDs `keep` names (the target's, where `START SLAVE UNTIL` stops). A file
 * whose events are encrypted is copied whole.
 *
 * Later events move up by what was dropped: each one's end position (`log_pos`, header offset
 * 13) is rewritten and its CRC-32 computed again, so the file reads as the server would have
 * written it with those transactions filtered at the source.
 */
export function filterBinlogFile(
  input: string,
  output: string,
  options: {
    readonly filter: ReplicationFilter;
    readonly startPosition: number;
    readonly keep: ReadonlySet<string>;
  },
): BinlogFilterResult {
  const replicated = tableMatcher(options.filter);
  const source = new FileWindow(input);
  const out = new OutputBuffer(output);
  // [position in the filtered file, position in the original] where a dropped run ended.
  const moves: [number, number][] = [];
  let kept = 0;
  let dropped = 0;
  let delta = 0;
  let checksumLength = 0;
  let tableMapPostHeader = 8;
  try {
    if (!source.read(0, 4).equals(BINLOG_MAGIC)) {
      throw new RewindError(ErrorNames.replay, `${input} is not a binary log file (bad magic number)`);
    }
    out.write(BINLOG_MAGIC);
    let at = 4;
    let encrypted = false;
    while (at < source.size) {
      if (encrypted || at + EVENT_HEADER_LENGTH > source.size) {
        // What cannot be read as events is copied as it is (nothing has moved before an
        // encryption start, which follows the format description).
        out.write(source.read(at, source.size - at));
        break;
      }
      const header = source.read(at, EVENT_HEADER_LENGTH);
      const type = header[4]!;
      const length = header.readUInt32LE(9);
      if (length < EVENT_HEADER_LENGTH || at + length > source.size) {
        out.write(source.read(at, source.size - at));
        break;
      }
      if (type === EventType.formatDescription) {
        const event = source.read(at, length);
        checksumLength = event[length - 5] === 1 ? 4 : 0;
        tableMapPostHeader = formatPostHeader(event, TABLE_MAP, tableMapPostHeader);
      }
      if (type === EventType.mariadbStartEncryption) encrypted = true;
      if (type === EventType.mariadbGtid && at >= options.startPosition) {
        const body = source.read(at + EVENT_HEADER_LENGTH, 13);
        const gtid = `${body.readUInt32LE(8)}-${header.readUInt32LE(5)}-${body.readBigUInt64LE(0)}`;
        const end =
          (body[12]! & STANDALONE) === 0 && !options.keep.has(gtid)
            ? otherTablesTransactionEnd(source, at + length, {
                replicated,
                checksumLength,
                tableMapPostHeader,
              })
            : undefined;
        if (end !== undefined) {
          delta += end - at;
          dropped += 1;
          at = end;
          moves.push([out.position, at]);
          continue;
        }
        kept += 1;
      }
      const event = source.read(at, length);
      if (delta > 0) {
        const moved = Buffer.from(event);
        const logPos = moved.readUInt32LE(13);
        if (logPos !== 0) moved.writeUInt32LE(logPos - delta, 13);
        if (checksumLength > 0) moved.writeUInt32LE(fastCrc32(moved.subarray(0, length - 4)), length - 4);
        out.write(moved);
      } else {
        out.write(event);
      }
      at += length;
    }
    out.close();
  } finally {
    source.close();
    out.closeQuietly();
  }
  return {
    keptTransactions: kept,
    droppedTransactions: dropped,
    droppedBytes: delta,
    originalPosition: (position) => {
      // The last run dropped before `position`: everything after it moved up by the same amount.
      let low = 0;
      let high = moves.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (moves[middle]![0] <= position) low = middle + 1;
        else high = middle;
      }
      if (low === 0) return position;
      const [filtered, original] = moves[low - 1]!;
      return original + (position - filtered);
    },
  };
}

/**
 * Where the transaction whose GTID event ends at `at` ends, when it is made only of row events on
 * tables the filter does not replicate; undefined when it must be kept (or does not end here).
 */
function otherTablesTransactionEnd(
  source: FileWindow,
  at: number,
  context: {
    readonly replicated: (database: string, table: string) => boolean;
    readonly checksumLength: number;
    readonly tableMapPostHeader: number;
  },
): number | undefined {
  let sawTable = false;
  while (at + EVENT_HEADER_LENGTH <= source.size) {
    const header = source.read(at, EVENT_HEADER_LENGTH);
    const type = header[4]!;
    const length = header.readUInt32LE(9);
    if (length < EVENT_HEADER_LENGTH || at + length > source.size) return undefined;
    if (type === TABLE_MAP) {
      const body = source.read(
        at + EVENT_HEADER_LENGTH,
        length - EVENT_HEADER_LENGTH - context.checksumLength,
      );
      const { database, table } = tableMapNames(body, context.tableMapPostHeader);
      if (context.replicated(database, table)) return undefined;
      sawTable = true;
    } else if (type === EventType.xid) {
      return sawTable ? at + length : undefined;
    } else if (type === EventType.query) {
      const body = source.read(
        at + EVENT_HEADER_LENGTH,
        length - EVENT_HEADER_LENGTH - context.checksumLength,
      );
      return sawTable && queryText(body) === "COMMIT" ? at + length : undefined;
    } else if (!ROW_EVENTS.has(type)) {
      return undefined;
    }
    at += length;
  }
  return undefined;
}

/** A table map's schema and table names (post-header: table id, flags; then length-prefixed names). */
function tableMapNames(body: Buffer, postHeader: number): { database: string; table: string } {
  let at = postHeader;
  const databaseLength = body[at]!;
  const database = body.subarray(at + 1, at + 1 + databaseLength).toString("utf8");
  at += 1 + databaseLength + 1;
  const tableLength = body[at]!;
  const table = body.subarray(at + 1, at + 1 + tableLength).toString("utf8");
  return { database, table };
}

/** A format description's post-header length for `type` (the table id is 6 bytes after 5.1, 4 before). */
function formatPostHeader(event: Buffer, type: number, fallback: number): number {
  // Body: binlog version (2), server version (50), created (4), common header length (1), then
  // one post-header length per event type from 1.
  const at = EVENT_HEADER_LENGTH + 2 + 50 + 4 + 1 + (type - 1);
  return at < event.length - 5 ? event[at]! : fallback;
}

function queryText(body: Buffer): string {
  // Post-header: thread id (4), exec time (4), db length (1), error code (2), status vars length (2).
  const start = 13 + body.readUInt16LE(11) + body[8]! + 1;
  return body.subarray(start).toString("latin1").trim();
}

/**
 * Whether the applier's filter replicates `database.table`: replicate_do_table names compared
 * without regard to case, replicate_wild_do_table patterns with LIKE's `%` and `_` (a superset of
 * what the server matches, so a doubt keeps the transaction).
 */
function tableMatcher(filter: ReplicationFilter): (database: string, table: string) => boolean {
  const exact = new Set(filter.doTables.map((name) => name.toLowerCase()));
  const patterns = filter.wildDoTables.map(
    (pattern) =>
      new RegExp(
        `^${pattern
          .split("")
          .map((c) => (c === "%" ? ".*" : c === "_" ? "." : c.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&")))
          .join("")}$`,
        "is",
      ),
  );
  return (database, table) => {
    const name = `${database}.${table}`;
    return exact.has(name.toLowerCase()) || patterns.some((pattern) => pattern.test(name));
  };
}

/** Reads a file through a 4 MiB window: the filter reads mostly headers, in order. */
class FileWindow {
  readonly size: number;
  private readonly fd: number;
  private window = Buffer.alloc(0);
  private windowStart = 0;

  constructor(file: string) {
    this.fd = openSync(file, "r");
    this.size = fstatSync(this.fd).size;
  }

  read(position: number, length: number): Buffer {
    if (position >= this.windowStart && position + length <= this.windowStart + this.window.length) {
      return this.window.subarray(position - this.windowStart, position - this.windowStart + length);
    }
    const size = Math.max(length, 4 * 1024 * 1024);
    const buffer = Buffer.allocUnsafe(Math.min(size, this.size - position));
    const read = readSync(this.fd, buffer, 0, buffer.length, position);
    this.window = buffer.subarray(0, read);
    this.windowStart = position;
    if (read < length) throw new RewindError(ErrorNames.replay, `short read at ${position}`);
    return this.window.subarray(0, length);
  }

  close(): void {
    closeSync(this.fd);
  }
}

class OutputBuffer {
  position = 0;
  private readonly fd: number;
  private parts: Buffer[] = [];
  private buffered = 0;
  private closed = false;

  constructor(file: string) {
    this.fd = openSync(file, "w", 0o600);
  }

  write(bytes: Buffer): void {
    // Windows are never overwritten (each read allocates its own), so no copy is needed.
    this.parts.push(bytes);
    this.buffered += bytes.length;
    this.position += bytes.length;
    if (this.buffered >= 1024 * 1024) this.flush();
  }

  private flush(): void {
    if (this.buffered === 0) return;
    writeSync(this.fd, Buffer.concat(this.parts));
    this.parts = [];
    this.buffered = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
    this.closed = true;
  }

  closeQuietly(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }
}
