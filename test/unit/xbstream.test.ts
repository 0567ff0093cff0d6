import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { crc32 } from "../../core/crc32.js";
import { tablesInStream, XbstreamReader } from "../../core/xbstream.js";

/** Builds xbstream chunks the way xtrabackup/mariabackup frame them. */
function payloadChunk(path: string, payload: Buffer, offset = 0): Buffer {
  const header = Buffer.alloc(14);
  header.write("XBSTCK01", 0);
  header[9] = "P".charCodeAt(0);
  header.writeUInt32LE(path.length, 10);
  const sizes = Buffer.alloc(20);
  sizes.writeBigUInt64LE(BigInt(payload.length), 0);
  sizes.writeBigUInt64LE(BigInt(offset), 8);
  sizes.writeUInt32LE(crc32(payload), 16);
  return Buffer.concat([header, Buffer.from(path), sizes, payload]);
}

function eofChunk(path: string): Buffer {
  const header = Buffer.alloc(14);
  header.write("XBSTCK01", 0);
  header[9] = "E".charCodeAt(0);
  header.writeUInt32LE(path.length, 10);
  return Buffer.concat([header, Buffer.from(path)]);
}

const stream = Buffer.concat([
  payloadChunk("ibdata1", Buffer.alloc(100_000, 7)),
  payloadChunk("xtrabackup_binlog_info", Buffer.from("mariadb-bin.000002\t")),
  payloadChunk("xtrabackup_binlog_info", Buffer.from("344\t0-7-7\n"), 19),
  eofChunk("ibdata1"),
  eofChunk("xtrabackup_binlog_info"),
]);

function feed(reader: XbstreamReader, data: Buffer, pieceSize: number): void {
  for (let at = 0; at < data.length; at += pieceSize) reader.push(data.subarray(at, at + pieceSize));
}

describe("xbstream reader", () => {
  it("our CRC-32 agrees with zlib's", () => {
    const data = Buffer.from("the quick brown fox");
    const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
    expect(crc32(data)).toBe(native ? native(data) : 0x9e59b5ec);
    expect(crc32(data.subarray(9), crc32(data.subarray(0, 9)))).toBe(crc32(data));
  });

  it.each([1, 7, 4096, stream.length])(
    "reads framing and captures small files, fed %i bytes at a time",
    (size) => {
      const reader = new XbstreamReader({ capture: ["xtrabackup_binlog_info"], crc32 });
      feed(reader, stream, size);
      expect(reader.finish()).toEqual({ files: 2, chunks: 5, payloadBytes: 100_029, unterminated: [] });
      expect(reader.capturedFile("xtrabackup_binlog_info")).toBe("mariadb-bin.000002\t344\t0-7-7\n");
    },
  );

  it("finds a flipped payload byte by its chunk checksum", () => {
    const damaged = Buffer.from(stream);
    damaged[500]! ^= 0x10;
    const reader = new XbstreamReader({ crc32 });
    expect(() => feed(reader, damaged, 4096)).toThrow(/checksum mismatch in ibdata1/);
  });

  it("finds a stream cut inside a chunk, and files never closed", () => {
    const cut = new XbstreamReader({ crc32 });
    cut.push(stream.subarray(0, 50_000));
    expect(() => cut.finish()).toThrow(/truncated/);
    const open = new XbstreamReader({ crc32 });
    open.push(stream.subarray(0, stream.length - eofChunk("xtrabackup_binlog_info").length));
    expect(open.finish().unterminated).toEqual(["xtrabackup_binlog_info"]);
  });

  it("refuses bytes that are not xbstream", () => {
    expect(() => new XbstreamReader().push(Buffer.from("this is not a backup stream"))).toThrow(
      /bad xbstream chunk magic/,
    );
  });
});

describe("tablesInStream", () => {
  it("reads the user tables from a backup's own file entries, for MariaDB and MySQL", () => {
    expect(
      tablesInStream([
        "backup-my.cnf",
        "ibdata1",
        "mysql/user.frm",
        "mysql/innodb_table_stats.ibd",
        "performance_schema/db.opt",
        "shop/db.opt",
        "shop/orders.frm",
        "shop/orders.ibd",
        "shop/items#P#p0.ibd",
        "shop/items#P#p1.ibd",
        "shop/items.frm",
        "shop/#sql-alter-1a2b-3.frm",
        "shop/legacy_374.sdi",
        "shop/legacy.MYD",
        "my@0024app/price@0020list.frm",
        "sys/sys_config.ibd",
        "xtrabackup_checkpoints",
      ]),
    ).toEqual(["my$app.price list", "shop.items", "shop.legacy", "shop.orders"]);
  });
});
