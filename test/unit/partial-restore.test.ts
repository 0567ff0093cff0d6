import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { crc32 } from "../../core/crc32.js";
import { XbstreamReader } from "../../core/xbstream.js";
import { partialKeep, replicationFilter, XbstreamFilter } from "../../host-agent/restore/partial.js";

/** Chunks framed the way mariabackup frames them (payload, sparse, end of file). */
function header(type: "P" | "S" | "E", path: string): Buffer {
  const head = Buffer.alloc(14);
  head.write("XBSTCK01", 0);
  head[9] = type.charCodeAt(0);
  head.writeUInt32LE(path.length, 10);
  return Buffer.concat([head, Buffer.from(path)]);
}
function payload(path: string, data: Buffer, offset = 0): Buffer {
  const sizes = Buffer.alloc(20);
  sizes.writeBigUInt64LE(BigInt(data.length), 0);
  sizes.writeBigUInt64LE(BigInt(offset), 8);
  sizes.writeUInt32LE(crc32(data), 16);
  return Buffer.concat([header("P", path), sizes, data]);
}
function sparse(path: string, data: Buffer): Buffer {
  // One hole: skip 4096 bytes, then the payload.
  const map = Buffer.alloc(8);
  map.writeUInt32LE(4096, 0);
  map.writeUInt32LE(data.length, 4);
  const sizes = Buffer.alloc(24);
  sizes.writeUInt32LE(1, 0);
  sizes.writeBigUInt64LE(BigInt(data.length), 4);
  sizes.writeBigUInt64LE(0n, 12);
  sizes.writeUInt32LE(crc32(Buffer.concat([map, data])), 20);
  return Buffer.concat([header("S", path), sizes, map, data]);
}
const eof = (path: string) => header("E", path);

const files: [string, number][] = [
  ["ibdata1", 50_000],
  ["ib_logfile0", 3000],
  ["mysql/global_priv.MAD", 800],
  ["mysql/innodb_table_stats.ibd", 900],
  ["shop/orders.frm", 300],
  ["shop/orders.ibd", 20_000],
  ["shop/big.frm", 300],
  ["shop/big.ibd", 200_000],
  ["shop/sales#P#p2026.ibd", 7000],
  ["shop/sales#P#p2027.ibd", 7000],
  ["shop/sales.par", 40],
  ["shop/legacy.MYD", 5000],
  ["shop/fresh.new", 4000],
  ["shop/db.opt", 60],
  ["xtrabackup_checkpoints", 97],
];
const stream = Buffer.concat([
  ...files.map(([path, size], i) => payload(path, Buffer.alloc(size, i + 1))),
  sparse("shop/orders.ibd", Buffer.alloc(1000, 9)),
  sparse("shop/big.ibd", Buffer.alloc(1000, 9)),
  ...files.map(([path]) => eof(path)),
]);

async function filtered(keep: (path: string) => boolean, piece: number) {
  const filter = new XbstreamFilter(keep);
  const pieces = [];
  for (let at = 0; at < stream.length; at += piece) pieces.push(stream.subarray(at, at + piece));
  const out = await buffer(Readable.from(pieces).pipe(filter));
  return { out, stats: filter.stats };
}

describe("a partial table restore's extraction", () => {
  const keep = partialKeep({
    tables: [
      { database: "shop", table: "orders" },
      { database: "shop", table: "sales" },
    ],
  });

  it("keeps the system's files, every definition, and the chosen tables' data (partitions too); drops the others' data", () => {
    expect(files.map(([path]) => path).filter(keep)).toEqual([
      "ibdata1",
      "ib_logfile0",
      "mysql/global_priv.MAD",
      "mysql/innodb_table_stats.ibd",
      "shop/orders.frm",
      "shop/orders.ibd",
      "shop/big.frm",
      "shop/sales#P#p2026.ibd",
      "shop/sales#P#p2027.ibd",
      "shop/sales.par",
      "shop/db.opt",
      "xtrabackup_checkpoints",
    ]);
    // Names as the server writes them to files: `$` is @0024.
    expect(partialKeep({ tables: [{ database: "shop", table: "a$b" }] })("shop/a@0024b.ibd")).toBe(true);
    expect(partialKeep({ tables: [{ database: "shop", table: "a$b" }] })("shop/a$b.ibd")).toBe(false);
    // An incremental's deltas go where their file goes.
    expect(
      [
        "shop/orders.ibd.delta",
        "shop/orders.ibd.meta",
        "shop/big.ibd.delta",
        "shop/big.ibd.meta",
        "ibdata1.delta",
      ].filter(keep),
    ).toEqual(["shop/orders.ibd.delta", "shop/orders.ibd.meta", "ibdata1.delta"]);
    // db.* keeps the whole schema.
    expect(partialKeep({ tables: [{ database: "shop" }] })("shop/big.ibd")).toBe(true);
    expect(
      replicationFilter({ tables: [{ database: "shop", table: "orders" }, { database: "crm" }] }),
    ).toEqual({
      doTables: ["shop.orders"],
      wildDoTables: ["crm.%"],
    });
  });

  it.each([1, 13, 4096, stream.length])(
    "passes whole chunks of kept files only, fed %i bytes at a time: what it passes is a valid stream",
    async (piece) => {
      const { out, stats } = await filtered(keep, piece);
      const reader = new XbstreamReader({ crc32 });
      reader.push(out);
      const kept = files.filter(([path]) => keep(path));
      expect(reader.finish()).toEqual({
        files: kept.length,
        // Each kept file's payload and end, and shop/orders.ibd's sparse chunk.
        chunks: kept.length * 2 + 1,
        payloadBytes: kept.reduce((sum, [, size]) => sum + size, 0) + 1000,
        unterminated: [],
      });
      expect(stats.keptBytes).toBe(out.length);
      expect(stats.keptBytes + stats.droppedBytes).toBe(stream.length);
      expect(stats).toMatchObject({
        keptFiles: kept.length,
        droppedFiles: files.length - kept.length,
        renames: [],
      });
    },
  );

  it("notes tables renamed while the backup ran, and refuses a damaged or cut stream", async () => {
    const filter = new XbstreamFilter(() => true);
    const renamed = Buffer.concat([
      payload("shop/orders.ren", Buffer.from("./shop/orders_old.ibd")),
      eof("shop/orders.ren"),
    ]);
    await buffer(Readable.from([renamed]).pipe(filter));
    expect(filter.stats.renames).toEqual(["shop/orders.ren"]);
    const damaged = Buffer.from(stream);
    damaged.write("XBSTCK99", 0);
    await expect(buffer(Readable.from([damaged]).pipe(new XbstreamFilter(() => true)))).rejects.toThrow(
      /bad xbstream chunk magic/,
    );
    await expect(
      buffer(Readable.from([stream.subarray(0, stream.length - 5)]).pipe(new XbstreamFilter(() => true))),
    ).rejects.toThrow(/ended inside an xbstream chunk/);
  });
});
