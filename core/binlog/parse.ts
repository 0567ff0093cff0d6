import type { Crc32 } from "../crc32.js";
import { BinlogError } from "./binlog-error.js";
import { BINLOG_MAGIC, EVENT_HEADER_LENGTH, type EventHeader, EventType } from "./events.js";
import {
  type MySqlGtidEvent,
  readGtidEvent,
  readPreviousGtids,
  readTaggedGtidEvent,
} from "./mysql-events.js";

export { BinlogError } from "./binlog-error.js";

/**
 * An incremental binary log reader (MySQL 8 and MariaDB), fed the file's bytes in order. It
 * checks each event's CRC-32, and reports every transaction with its GTID, its byte range and its
 * timestamp, so that replay can start at a backup's exact position and stop exactly at a target.
 * Only one event is held in memory at a time.
 */
export interface BinlogTransaction {
  /** `domain-server-seq` on MariaDB, `uuid:n` or `uuid:tag:n` on MySQL; null when anonymous (MySQL gtid_mode=OFF). */
  readonly gtid: string | null;
  readonly startPosition: number;
  /** Offset just after the transaction's last event: a stop position that includes it. */
  readonly endPosition: number;
  /** Seconds since the epoch, from the event header (one-second resolution). */
  readonly timestamp: number;
  /** MySQL's immediate_commit_timestamp in microseconds since the epoch; null on MariaDB. */
  readonly commitMicros: number | null;
}

export interface BinlogSummary {
  readonly serverVersion: string;
  readonly checksum: "none" | "crc32";
  /** GTIDs executed before this file (MariaDB GTID_LIST, MySQL PREVIOUS_GTIDS). */
  readonly gtidsBefore: string;
  readonly transactions: number;
  readonly firstGtid: string | null;
  readonly lastGtid: string | null;
  readonly firstEventTime: number | null;
  readonly lastEventTime: number | null;
  /** Bytes read, which is the file's size when complete. */
  readonly size: number;
  /**
   * Where the last whole event outside a transaction ends: the end of the last complete
   * transaction (or of the header events). A file the server crashed with is kept up to here by
   * its crash recovery; what follows (an unfinished transaction, a torn event) is rolled back.
   */
  readonly completeEnd: number;
  /** Ends with a ROTATE or STOP event: the server finished writing it. */
  readonly closed: boolean;
  /** The server still had the file open when it was read (the in-use flag was set). */
  readonly inUse: boolean;
  readonly rotatesTo: string | null;
}

interface OpenTransaction {
  gtid: string | null;
  startPosition: number;
  timestamp: number;
  commitMicros: number | null;
  /** MySQL's transaction_length: where the transaction ends, whatever its last event is. */
  endPosition: number | null;
  /** MariaDB FL_STANDALONE: a single statement with no XID (DDL). */
  standalone: boolean;
  sawBegin: boolean;
  mysql: boolean;
}

/** LOG_EVENT_BINLOG_IN_USE_F: set in the format description event while the server writes the file. */
const IN_USE_FLAG = 0x1;

const COMMIT = /^\s*(COMMIT|ROLLBACK|XA COMMIT|XA ROLLBACK)\b/i;

export class BinlogReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private checksumLength = 0;
  private serverVersion = "";
  private sawFormatDescription = false;
  private gtidsBefore = "";
  private open?: OpenTransaction;
  private count = 0;
  private firstGtid: string | null = null;
  private lastGtid: string | null = null;
  private firstEventTime: number | null = null;
  private lastEventTime: number | null = null;
  private closed = false;
  private inUse = false;
  private rotatesTo: string | null = null;
  private completeEnd = 0;

  constructor(
    private readonly options: {
      readonly crc32?: Crc32;
      readonly onTransaction?: (transaction: BinlogTransaction) => void;
    } = {},
  ) {}

  push(data: Buffer): void {
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.offset === 0) {
      const magic = this.take(4);
      if (!magic) return;
      if (!magic.equals(BINLOG_MAGIC))
        throw new BinlogError("this is not a binary log file (bad magic number)");
    }
    for (;;) {
      const head = this.peek(EVENT_HEADER_LENGTH);
      if (!head) return;
      const size = head.readUInt32LE(9);
      if (size < EVENT_HEADER_LENGTH)
        throw new BinlogError(`event at ${this.offset} has impossible size ${size}`);
      const event = this.take(size);
      if (!event) return;
      this.handle(event, this.offset - size);
    }
  }

  finish(): BinlogSummary {
    if (this.pendingBytes > 0) {
      throw new BinlogError(`the binary log ends inside an event at offset ${this.offset}; it was truncated`);
    }
    return this.snapshot();
  }

  /** What the whole events read so far say: for a file the server is still writing. */
  snapshot(): BinlogSummary {
    return {
      serverVersion: this.serverVersion,
      checksum: this.checksumLength > 0 ? "crc32" : "none",
      gtidsBefore: this.gtidsBefore,
      transactions: this.count,
      firstGtid: this.firstGtid,
      lastGtid: this.lastGtid,
      firstEventTime: this.firstEventTime,
      lastEventTime: this.lastEventTime,
      size: this.offset,
      completeEnd: this.completeEnd,
      closed: this.closed,
      inUse: this.inUse,
      rotatesTo: this.rotatesTo,
    };
  }

  private handle(event: Buffer, position: number): void {
    const header: EventHeader = {
      timestamp: event.readUInt32LE(0),
      type: event[4]!,
      serverId: event.readUInt32LE(5),
      size: event.length,
      position,
      endPosition: event.readUInt32LE(13),
      flags: event.readUInt16LE(17),
    };
    if (header.type === EventType.formatDescription) {
      this.readFormatDescription(event);
      this.inUse = (header.flags & IN_USE_FLAG) !== 0;
    }
    if (this.checksumLength > 0 && this.options.crc32) {
      const expected = event.readUInt32LE(event.length - 4);
      let covered = event.subarray(0, event.length - 4);
      if (header.type === EventType.formatDescription && header.flags & IN_USE_FLAG) {
        // The server sets the in-use flag on the active file after checksumming the event.
        covered = Buffer.from(covered);
        covered.writeUInt16LE(header.flags & ~IN_USE_FLAG, 17);
      }
      if (this.options.crc32(covered) !== expected) {
        throw new BinlogError(
          `event at offset ${position} fails its CRC-32 check; the binary log is damaged`,
        );
      }
    }
    const body = event.subarray(EVENT_HEADER_LENGTH, event.length - this.checksumLength);
    if (header.type !== EventType.formatDescription && header.timestamp > 0) {
      this.firstEventTime ??= header.timestamp;
      this.lastEventTime = header.timestamp;
    }
    switch (header.type) {
      case EventType.mariadbGtidList:
        this.gtidsBefore = readMariaDbGtidList(body);
        break;
      case EventType.mysqlPreviousGtids:
        this.gtidsBefore = readPreviousGtids(body);
        break;
      case EventType.mariadbGtid: {
        const seq = body.readBigUInt64LE(0);
        const domain = body.readUInt32LE(8);
        this.begin(header, {
          gtid: `${domain}-${header.serverId}-${seq}`,
          commitMicros: null,
          transactionLength: null,
          standalone: (body[12]! & 1) === 1,
        });
        break;
      }
      case EventType.mysqlGtid:
      case EventType.mysqlAnonymousGtid:
        this.begin(header, readGtidEvent(body, header.type === EventType.mysqlAnonymousGtid));
        break;
      case EventType.mysqlGtidTagged:
        this.begin(header, readTaggedGtidEvent(body));
        break;
      case EventType.xid:
        this.end(header);
        break;
      case EventType.query: {
        if (!this.open) break;
        const text = queryText(body);
        if (/^\s*BEGIN\b/i.test(text)) this.open.sawBegin = true;
        else if (COMMIT.test(text) || this.open.standalone || (this.open.mysql && !this.open.sawBegin))
          this.end(header);
        break;
      }
      case EventType.rotate:
        // A rotate at offset 4 of a relay log is fake; in a binlog it closes the file.
        this.rotatesTo = body.subarray(8).toString();
        this.closed = true;
        break;
      case EventType.stop:
        this.closed = true;
        break;
      default:
        break;
    }
    if (this.open?.endPosition !== null && this.open?.endPosition === header.position + header.size) {
      this.end(header);
    }
    if (!this.open) this.completeEnd = header.position + header.size;
  }

  private readFormatDescription(event: Buffer): void {
    this.sawFormatDescription = true;
    this.serverVersion = event
      .subarray(EVENT_HEADER_LENGTH + 2, EVENT_HEADER_LENGTH + 52)
      .toString("latin1")
      .replace(/\0.*$/s, "");
    // Servers that write checksums put the algorithm in the byte before the FDE's own checksum.
    const algorithm = event[event.length - 5]!;
    this.checksumLength = algorithm === 1 ? 4 : 0;
  }

  private begin(header: EventHeader, event: MySqlGtidEvent & { readonly standalone?: boolean }): void {
    if (!this.sawFormatDescription)
      throw new BinlogError("a GTID event comes before the format description event");
    if (this.open?.endPosition) {
      throw new BinlogError(
        `a GTID event at offset ${header.position} starts a transaction while ${this.open.gtid ?? "an anonymous one"} (from offset ${this.open.startPosition}) is still open; the binary log is damaged`,
      );
    }
    const mysql = event.standalone === undefined;
    this.open = {
      gtid: event.gtid,
      startPosition: header.position,
      timestamp: header.timestamp,
      commitMicros: event.commitMicros,
      endPosition: event.transactionLength ? header.position + event.transactionLength : null,
      standalone: event.standalone ?? false,
      sawBegin: false,
      mysql,
    };
  }

  private end(header: EventHeader): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    const endPosition = header.position + header.size;
    if (open.endPosition !== null && open.endPosition !== endPosition) {
      throw new BinlogError(
        `transaction ${open.gtid ?? "(anonymous)"} at offset ${open.startPosition} should end at ${open.endPosition} (its transaction_length) but ends at ${endPosition}; the binary log is damaged`,
      );
    }
    this.count++;
    if (open.gtid !== null) {
      this.firstGtid ??= open.gtid;
      this.lastGtid = open.gtid;
    }
    this.options.onTransaction?.({
      gtid: open.gtid,
      startPosition: open.startPosition,
      endPosition,
      timestamp: open.timestamp,
      commitMicros: open.commitMicros,
    });
  }

  private peek(length: number): Buffer | undefined {
    if (this.pendingBytes < length) return undefined;
    if (this.pending[0]!.length < length) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, length);
  }

  private take(length: number): Buffer | undefined {
    const head = this.peek(length);
    if (!head) return undefined;
    const first = this.pending[0]!;
    if (first.length === length) this.pending.shift();
    else this.pending[0] = first.subarray(length);
    this.pendingBytes -= length;
    this.offset += length;
    return head;
  }
}

function queryText(body: Buffer): string {
  // Post-header: thread id (4), exec time (4), db length (1), error code (2), status vars length (2).
  const dbLength = body[8]!;
  const statusLength = body.readUInt16LE(11);
  const start = 13 + statusLength + dbLength + 1;
  return body.subarray(start, start + 64).toString("latin1");
}

function readMariaDbGtidList(body: Buffer): string {
  const count = body.readUInt32LE(0) & 0x0fffffff;
  const gtids: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 16;
    gtids.push(`${body.readUInt32LE(at)}-${body.readUInt32LE(at + 4)}-${body.readBigUInt64LE(at + 8)}`);
  }
  return gtids.join(",");
}
