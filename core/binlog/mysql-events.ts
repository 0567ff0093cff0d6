import { BinlogError } from "./binlog-error.js";

/**
 * MySQL 8 event bodies that carry GTIDs. Layouts from the MySQL source (libbinlogevents
 * control_events): GTID and ANONYMOUS_GTID are fixed fields, GTID_TAGGED (8.4+) and tagged
 * PREVIOUS_GTIDS use the mysql::serialization variable-length encoding.
 */
export interface MySqlGtidEvent {
  /** `uuid:n`, `uuid:tag:n`, or null for an anonymous transaction (gtid_mode=OFF). */
  readonly gtid: string | null;
  /** immediate_commit_timestamp: microseconds since the epoch, when the transaction committed. */
  readonly commitMicros: number | null;
  /** Bytes from the start of the GTID event to the end of the transaction's last event. */
  readonly transactionLength: number | null;
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** GTID_LOG_EVENT (33) and ANONYMOUS_GTID_LOG_EVENT (34). */
export function readGtidEvent(body: Buffer, anonymous: boolean): MySqlGtidEvent {
  const gno = body.readBigUInt64LE(17);
  const gtid = anonymous ? null : `${formatUuid(body.subarray(1, 17))}:${gno}`;
  // flags(1) uuid(16) gno(8) lt_type(1) last_committed(8) sequence_number(8), then since 8.0.1
  // the commit timestamps (7 bytes each; the top bit says an original one follows) and since
  // 8.0.2 the transaction length as a packed integer.
  let at = 42;
  if (body.length < at + 7) return { gtid, commitMicros: null, transactionLength: null };
  const immediate = body.readUIntLE(at, 6) + body[at + 6]! * 2 ** 48;
  const hasOriginal = (body[at + 6]! & 0x80) !== 0;
  const commitMicros = hasOriginal ? immediate - 0x80 * 2 ** 48 : immediate;
  at += hasOriginal ? 14 : 7;
  if (body.length <= at) return { gtid, commitMicros, transactionLength: null };
  return { gtid, commitMicros, transactionLength: packedInteger(body, at) };
}

/** net_field_length: one byte below 251, else a marker and 2, 3 or 8 bytes. */
function packedInteger(body: Buffer, at: number): number {
  const first = body[at]!;
  if (first < 251) return first;
  if (first === 252) return body.readUInt16LE(at + 1);
  if (first === 253) return body.readUIntLE(at + 1, 3);
  if (first === 254) return Number(body.readBigUInt64LE(at + 1));
  throw new BinlogError(`a GTID event holds an invalid packed integer (0x${first.toString(16)})`);
}

/** mysql::serialization's unsigned varlen: the first byte's trailing ones count the extra bytes. */
class VarlenReader {
  at = 0;
  constructor(private readonly bytes: Buffer) {}
  unsigned(): bigint {
    const first = this.bytes[this.at];
    if (first === undefined) throw new BinlogError("a tagged GTID event ends inside a field");
    let extra = 0;
    while (extra < 8 && (first >> extra) & 1) extra++;
    if (this.at + extra + 1 > this.bytes.length)
      throw new BinlogError("a tagged GTID event ends inside a field");
    let value = 0n;
    for (let i = extra; i >= 0; i--) value = (value << 8n) | BigInt(this.bytes[this.at + i]!);
    this.at += extra + 1;
    return extra === 8 ? value >> 8n : value >> BigInt(extra + 1);
  }
  signed(): bigint {
    const value = this.unsigned();
    return value & 1n ? -(value >> 1n) - 1n : value >> 1n;
  }
  text(): string {
    const length = Number(this.unsigned());
    const value = this.bytes.subarray(this.at, this.at + length).toString("utf8");
    this.at += length;
    return value;
  }
}

/** GTID_TAGGED_LOG_EVENT (42, MySQL 8.4+): a serialized message of numbered fields. */
export function readTaggedGtidEvent(body: Buffer): MySqlGtidEvent {
  const reader = new VarlenReader(body);
  // Header: the serialization format version, the message size, the last field a reader must
  // understand.
  for (let i = 0; i < 3; i++) reader.unsigned();
  let uuid = "";
  let gno = 0n;
  let tag = "";
  let commitMicros: number | null = null;
  let transactionLength: number | null = null;
  while (reader.at < body.length) {
    const field = Number(reader.unsigned());
    switch (field) {
      case 1:
        uuid = formatUuid(Buffer.from(Array.from({ length: 16 }, () => Number(reader.unsigned()))));
        break;
      case 2:
        gno = reader.signed();
        break;
      case 3:
        tag = reader.text();
        break;
      case 4:
      case 5:
        reader.signed();
        break;
      case 6:
        commitMicros = Number(reader.unsigned());
        break;
      case 8:
        transactionLength = Number(reader.unsigned());
        break;
      case 0:
      case 7:
      case 9:
      case 10:
      case 11:
        reader.unsigned();
        break;
      default:
        throw new BinlogError(`a tagged GTID event has field ${field}, which this reader does not know`);
    }
  }
  if (!uuid || gno < 1n) throw new BinlogError("a tagged GTID event names no GTID");
  return { gtid: tag ? `${uuid}:${tag}:${gno}` : `${uuid}:${gno}`, commitMicros, transactionLength };
}

/** PREVIOUS_GTIDS_LOG_EVENT (35), untagged (8.0) or tagged (8.4+) encoding. */
export function readPreviousGtids(body: Buffer): string {
  // The tagged encoding marks its first and eighth bytes with format 1; an untagged count of
  // uuids never reaches the eighth byte.
  const tagged = body[7] !== 0;
  const sids = tagged ? body.readUIntLE(1, 6) : Number(body.readBigUInt64LE(0));
  const parts: string[] = [];
  let at = 8;
  for (let i = 0; i < sids; i++) {
    const uuid = formatUuid(body.subarray(at, at + 16));
    at += 16;
    let tag = "";
    if (tagged) {
      const reader = new VarlenReader(body.subarray(at));
      tag = reader.text();
      at += reader.at;
    }
    const intervals = Number(body.readBigUInt64LE(at));
    at += 8;
    const ranges: string[] = [];
    for (let j = 0; j < intervals; j++) {
      const start = body.readBigUInt64LE(at);
      const end = body.readBigUInt64LE(at + 8) - 1n;
      ranges.push(start === end ? `${start}` : `${start}-${end}`);
      at += 16;
    }
    parts.push(`${uuid}:${tag ? `${tag}:` : ""}${ranges.join(":")}`);
  }
  return parts.join(",");
}
