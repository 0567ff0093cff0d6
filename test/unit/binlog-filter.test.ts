import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BinlogReader, type BinlogTransaction } from "../../core/binlog/parse.js";
import { crc32 } from "../../core/crc32.js";
import { filterBinlogFile } from "../../host-agent/restore/binlog-filter.js";
import { scratchDir } from "../support.js";

/**
 * A MariaDB binlog built event by event (the layouts of MariaDB's log_event.h, as
 * core/binlog/parse.ts reads them), so each case says exactly which transactions it holds.
 */
class BinlogBuilder {
  private readonly events: Buffer[] = [Buffer.from([0xfe, 0x62, 0x69, 0x6e])];
  private position = 4;

  constructor() {
    const body = Buffer.alloc(2 + 50 + 4 + 1 + 170 + 1);
    body.writeUInt16LE(4, 0);
    body.write("10.11.6-MariaDB-log", 2, "latin1");
    body[56] = 19;
    // Post-header lengths from event type 1: a table map's (type 19) is 8 (a 6-byte table id).
    body[57 + 18] = 8;
    body[body.length - 1] = 1; // CRC-32 checksums
    this.event(15, body);
  }

  event(type: number, body: Buffer, serverId = 1): this {
    const length = 19 + body.length + 4;
    const event = Buffer.alloc(length);
    event.writeUInt32LE(1_700_000_000, 0);
    event[4] = type;
    event.writeUInt32LE(serverId, 5);
    event.writeUInt32LE(length, 9);
    event.writeUInt32LE(this.position + length, 13);
    body.copy(event, 19);
    event.writeUInt32LE(crc32(event.subarray(0, length - 4)), length - 4);
    this.events.push(event);
    this.position += length;
    return this;
  }

  gtid(seq: number, standalone = false): this {
    const body = Buffer.alloc(19);
    body.writeBigUInt64LE(BigInt(seq), 0);
    body.writeUInt32LE(0, 8);
    body[12] = standalone ? 1 : 0;
    return this.event(162, body);
  }

  tableMap(database: string, table: string): this {
    const body = Buffer.concat([
      Buffer.alloc(8),
      Buffer.from([database.length]),
      Buffer.from(`${database}\0`),
      Buffer.from([table.length]),
      Buffer.from(`${table}\0`),
      Buffer.from([1, 3, 0]),
    ]);
    return this.event(19, body);
  }

  rows(): this {
    return this.event(23, Buffer.alloc(40, 7));
  }

  xid(): this {
    return this.event(16, Buffer.alloc(8));
  }

  query(text: string): this {
    const header = Buffer.alloc(13);
    header[8] = 4; // db length
    return this.event(2, Buffer.concat([header, Buffer.from("shop\0"), Buffer.from(text)]));
  }

  /** One row transaction on `tables` (`db.t`). */
  rowTransaction(seq: number, ...tables: string[]): this {
    this.gtid(seq);
    for (const name of tables) {
      const [database, table] = name.split(".");
      this.tableMap(database!, table!);
    }
    for (const _ of tables) this.rows();
    return this.xid();
  }

  get size(): number {
    return this.position;
  }

  write(file: string): void {
    writeFileSync(file, Buffer.concat(this.events));
  }
}

/** The file's transactions, read with every CRC-32 and end position checked. */
function transactionsOf(file: string): BinlogTransaction[] {
  const transactions: BinlogTransaction[] = [];
  const bytes = readFileSync(file);
  const reader = new BinlogReader({ crc32, onTransaction: (t) => transactions.push(t) });
  reader.push(bytes);
  reader.finish();
  // Every event's log_pos is where it ends in this file.
  for (let at = 4; at < bytes.length; at += bytes.readUInt32LE(at + 9)) {
    expect(bytes.readUInt32LE(at + 13)).toBe(at + bytes.readUInt32LE(at + 9));
  }
  return transactions;
}

describe("the binlog filter of a partial table restore", () => {
  const scratch = scratchDir("binlog-filter");
  const filter = { doTables: ["shop.orders"], wildDoTables: ["audit.%"] };
  afterAll(() => scratch.remove());

  it("leaves out row transactions on other tables only, and keeps every other event readable in place", () => {
    const dir = scratch.dir;
    const binlog = new BinlogBuilder()
      .rowTransaction(1, "shop.big")
      .rowTransaction(2, "shop.orders")
      .rowTransaction(3, "shop.big", "shop.events")
      // Touches the chosen table and another: kept whole.
      .rowTransaction(4, "shop.big", "shop.orders")
      // DDL and statements go to the applier's own filter.
      .gtid(5, true)
      .query("ALTER TABLE shop.big ADD COLUMN x INT")
      .gtid(6)
      .query("INSERT INTO shop.big VALUES (1)")
      .query("COMMIT")
      // A schema the filter takes whole (audit.%), with LIKE's case rules.
      .rowTransaction(7, "AUDIT.log")
      .rowTransaction(8, "shop.big")
      // The target: kept although it is on another table, so START SLAVE UNTIL stops on it.
      .rowTransaction(9, "shop.big")
      .rowTransaction(10, "shop.big");
    const input = path.join(dir, "mariadb-bin.000001");
    const output = path.join(dir, "filtered.000001");
    binlog.write(input);
    const result = filterBinlogFile(input, output, { filter, startPosition: 0, keep: new Set(["0-1-9"]) });

    const kept = transactionsOf(output).map((t) => t.gtid);
    expect(kept).toEqual(["0-1-2", "0-1-4", "0-1-5", "0-1-6", "0-1-7", "0-1-9"]);
    expect(result).toMatchObject({ keptTransactions: 6, droppedTransactions: 4 });
    expect(readFileSync(output).length).toBe(binlog.size - result.droppedBytes);

    // Positions the applier reports in the filtered file map back to the original's.
    const original = transactionsOf(input);
    const filtered = transactionsOf(output);
    for (const t of filtered) {
      const same = original.find((o) => o.gtid === t.gtid)!;
      expect(result.originalPosition(t.startPosition)).toBe(same.startPosition);
      // An end followed by transactions left out maps past them: for progress, they are done too.
      const next = original.find((o) => o.startPosition >= same.endPosition && kept.includes(o.gtid));
      expect(result.originalPosition(t.endPosition)).toBeGreaterThanOrEqual(same.endPosition);
      expect(result.originalPosition(t.endPosition)).toBeLessThanOrEqual(next?.startPosition ?? binlog.size);
    }
  });

  it("copies everything before the backup's position as it is, and a file with nothing to leave out byte for byte", () => {
    const dir = scratch.dir;
    const binlog = new BinlogBuilder().rowTransaction(1, "shop.big").rowTransaction(2, "shop.big");
    const start = binlog.size;
    binlog.rowTransaction(3, "shop.big").rowTransaction(4, "shop.orders");
    const input = path.join(dir, "b.000001");
    binlog.write(input);
    const output = path.join(dir, "b-filtered.000001");
    const result = filterBinlogFile(input, output, { filter, startPosition: start, keep: new Set() });
    expect(transactionsOf(output).map((t) => t.gtid)).toEqual(["0-1-1", "0-1-2", "0-1-4"]);
    expect(result.droppedTransactions).toBe(1);

    const onlyOrders = new BinlogBuilder().rowTransaction(1, "shop.orders").query("COMMIT");
    onlyOrders.write(input);
    filterBinlogFile(input, output, { filter, startPosition: 0, keep: new Set() });
    expect(readFileSync(output).equals(readFileSync(input))).toBe(true);
  });

  it("keeps a transaction that does not end in the file (a torn tail) and anything it cannot read", () => {
    const dir = scratch.dir;
    const binlog = new BinlogBuilder().rowTransaction(1, "shop.big").gtid(2).tableMap("shop", "big").rows();
    const input = path.join(dir, "c.000001");
    binlog.write(input);
    const output = path.join(dir, "c-filtered.000001");
    const result = filterBinlogFile(input, output, { filter, startPosition: 0, keep: new Set() });
    expect(result.droppedTransactions).toBe(1);
    const bytes = readFileSync(output);
    // The unfinished transaction is still there, after the dropped one's place.
    expect(bytes.length).toBe(binlog.size - result.droppedBytes);
    expect(new BinlogReader({ crc32 }).push(bytes)).toBeUndefined();
  });
});
