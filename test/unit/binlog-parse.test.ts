import { describe, expect, it } from "vitest";
import { EventType } from "../../core/binlog/events.js";
import { BinlogReader, type BinlogTransaction } from "../../core/binlog/parse.js";
import { crc32 } from "../../core/crc32.js";

/**
 * MySQL 8 binlog events built byte by byte from the documented format (no MySQL server can be
 * installed here): FDE with CRC32, PREVIOUS_GTIDS, then a DML transaction (GTID, BEGIN, XID) and
 * a DDL (GTID, QUERY), then ROTATE.
 */
const UUID = Buffer.from("3e11fa4771ca11e19e33c80aa9429562", "hex");
let position = 4;

function event(type: number, timestamp: number, body: Buffer): Buffer {
  const size = 19 + body.length + 4;
  const header = Buffer.alloc(19);
  header.writeUInt32LE(timestamp, 0);
  header[4] = type;
  header.writeUInt32LE(7, 5);
  header.writeUInt32LE(size, 9);
  header.writeUInt32LE(position + size, 13);
  const withoutCrc = Buffer.concat([header, body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(withoutCrc), 0);
  position += size;
  return Buffer.concat([withoutCrc, crc]);
}

function formatDescription(): Buffer {
  const body = Buffer.alloc(2 + 50 + 4 + 1 + 40 + 1);
  body.writeUInt16LE(4, 0);
  body.write("8.0.35", 2, "latin1");
  body[56] = 19;
  body[body.length - 1] = 1; // CRC32
  return event(EventType.formatDescription, 1_795_000_000, body);
}

function previousGtids(): Buffer {
  const body = Buffer.alloc(8 + 16 + 8 + 16);
  body.writeBigUInt64LE(1n, 0);
  UUID.copy(body, 8);
  body.writeBigUInt64LE(1n, 24);
  body.writeBigUInt64LE(1n, 32);
  body.writeBigUInt64LE(101n, 40); // interval 1-100 (end exclusive)
  return event(EventType.mysqlPreviousGtids, 1_795_000_000, body);
}

function gtid(gno: bigint, timestamp: number): Buffer {
  const body = Buffer.alloc(1 + 16 + 8 + 1 + 16);
  UUID.copy(body, 1);
  body.writeBigUInt64LE(gno, 17);
  return event(EventType.mysqlGtid, timestamp, body);
}

function query(text: string, timestamp: number): Buffer {
  const post = Buffer.alloc(13);
  post[8] = 2; // db name length
  return event(EventType.query, timestamp, Buffer.concat([post, Buffer.from("db\0"), Buffer.from(text)]));
}

function xid(timestamp: number): Buffer {
  return event(EventType.xid, timestamp, Buffer.alloc(8));
}

function rotate(): Buffer {
  return event(EventType.rotate, 0, Buffer.concat([Buffer.alloc(8), Buffer.from("binlog.000043")]));
}

const file = Buffer.concat([
  Buffer.from([0xfe, 0x62, 0x69, 0x6e]),
  formatDescription(),
  previousGtids(),
  gtid(101n, 1_795_000_010),
  query("BEGIN", 1_795_000_010),
  xid(1_795_000_010),
  gtid(102n, 1_795_000_020),
  query("CREATE TABLE t (id INT)", 1_795_000_020),
  rotate(),
]);

describe("binlog reader on MySQL 8 events", () => {
  it("finds transactions, their GTIDs, byte ranges and times, and the GTIDs before the file", () => {
    const transactions: BinlogTransaction[] = [];
    const reader = new BinlogReader({ crc32, onTransaction: (t) => transactions.push(t) });
    for (let at = 0; at < file.length; at += 7) reader.push(file.subarray(at, at + 7));
    const summary = reader.finish();
    expect(summary).toMatchObject({
      serverVersion: "8.0.35",
      checksum: "crc32",
      gtidsBefore: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100",
      transactions: 2,
      firstGtid: "3e11fa47-71ca-11e1-9e33-c80aa9429562:101",
      lastGtid: "3e11fa47-71ca-11e1-9e33-c80aa9429562:102",
      closed: true,
      inUse: false,
      rotatesTo: "binlog.000043",
      size: file.length,
    });
    expect(transactions.map((t) => [t.gtid!.split(":")[1], t.timestamp])).toEqual([
      ["101", 1_795_000_010],
      ["102", 1_795_000_020],
    ]);
    expect(transactions[0]!.endPosition).toBe(transactions[1]!.startPosition);
  });

  it("refuses a damaged event and a truncated file", () => {
    const damaged = Buffer.from(file);
    damaged[damaged.length - 30]! ^= 0x01;
    expect(() => new BinlogReader({ crc32 }).push(damaged)).toThrow(/fails its CRC-32 check/);
    const cut = new BinlogReader({ crc32 });
    cut.push(file.subarray(0, file.length - 10));
    expect(() => cut.finish()).toThrow(/truncated/);
    expect(() => new BinlogReader().push(Buffer.from("not a binlog"))).toThrow(/not a binary log/);
  });

  it("a file cut by a crash ends, for recovery, after its last complete transaction: not inside an open one or a torn event", () => {
    const ends: number[] = [];
    const starts: number[] = [];
    const whole = new BinlogReader({
      crc32,
      onTransaction: (t) => {
        starts.push(t.startPosition);
        ends.push(t.endPosition);
      },
    });
    whole.push(file);
    expect(whole.finish().completeEnd).toBe(file.length);
    const [firstEnd, secondEnd] = ends as [number, number];
    // Inside the second transaction (its GTID event whole, its query torn): the first one's end.
    const insideSecond = new BinlogReader({ crc32 });
    insideSecond.push(file.subarray(0, firstEnd + 50));
    expect(insideSecond.snapshot()).toMatchObject({ completeEnd: firstEnd, closed: false, transactions: 1 });
    // A whole second transaction, then a torn rotate event: the second one's end.
    const tornTail = new BinlogReader({ crc32 });
    tornTail.push(file.subarray(0, secondEnd + 5));
    expect(tornTail.snapshot()).toMatchObject({ completeEnd: secondEnd, closed: false, transactions: 2 });
    expect(() => tornTail.finish()).toThrow(/truncated/);
    // Header events only: after them.
    const headerOnly = new BinlogReader({ crc32 });
    headerOnly.push(file.subarray(0, firstEnd - 1));
    expect(headerOnly.snapshot()).toMatchObject({ completeEnd: starts[0], transactions: 0 });
  });
});
