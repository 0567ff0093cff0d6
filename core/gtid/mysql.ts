import { type GtidModel, type GtidSet, gtidError, sameEngine } from "./gtid-set.js";

/**
 * MySQL GTID sets: `uuid:1-5:7-9,uuid2:1-3`, and MySQL 8.4+ tagged GTIDs (`uuid:tag:3`, a set
 * `uuid:1-13:tag:1-2`). A set is kept per stream (uuid, or uuid and tag) as sorted, merged,
 * inclusive intervals.
 */
type Interval = readonly [start: bigint, end: bigint];
type Streams = ReadonlyMap<string, readonly Interval[]>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TAG = /^[a-z_][a-z0-9_]{0,31}$/;
const RANGE = /^(\d+)(?:-(\d+))?$/;
const SYNTAX = "uuid:N or uuid:tag:N, such as 3e11fa47-71ca-11e1-9e33-c80aa9429562:23";

interface MySqlGtid {
  /** `uuid` or `uuid:tag`. */
  readonly stream: string;
  readonly gno: bigint;
}

function parse(text: string): MySqlGtid {
  const parts = text.trim().toLowerCase().split(":");
  const [uuid, ...rest] = parts;
  const gno = rest.at(-1);
  const tag = rest.length === 2 ? rest[0]! : undefined;
  if (
    !uuid ||
    !UUID.test(uuid) ||
    rest.length < 1 ||
    rest.length > 2 ||
    !gno ||
    !/^\d+$/.test(gno) ||
    BigInt(gno) < 1n ||
    (tag !== undefined && !TAG.test(tag))
  ) {
    throw gtidError(`"${text}" is not a MySQL GTID; expected ${SYNTAX}`);
  }
  return { stream: tag ? `${uuid}:${tag}` : uuid, gno: BigInt(gno) };
}

function merge(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const [start, end] of sorted) {
    const last = merged.at(-1);
    if (last && start <= last[1] + 1n) {
      if (end > last[1]) last[1] = end;
    } else merged.push([start, end]);
  }
  return merged;
}

function minus(intervals: readonly Interval[], removed: readonly Interval[]): Interval[] {
  let remaining: Interval[] = [...intervals];
  for (const [cutStart, cutEnd] of removed) {
    remaining = remaining.flatMap(([start, end]): Interval[] => {
      if (cutEnd < start || cutStart > end) return [[start, end]];
      const pieces: Interval[] = [];
      if (start < cutStart) pieces.push([start, cutStart - 1n]);
      if (end > cutEnd) pieces.push([cutEnd + 1n, end]);
      return pieces;
    });
  }
  return remaining;
}

function formatIntervals(intervals: readonly Interval[]): string {
  return intervals.map(([start, end]) => (start === end ? `${start}` : `${start}-${end}`)).join(":");
}

class MySqlGtidSet implements GtidSet {
  readonly engine = "mysql" as const;
  constructor(private readonly streams: Streams) {}

  private static of(other: GtidSet): MySqlGtidSet {
    return other as MySqlGtidSet;
  }

  static build(entries: Iterable<[string, readonly Interval[]]>): MySqlGtidSet {
    const streams = new Map<string, Interval[]>();
    for (const [stream, intervals] of entries) {
      const merged = merge([...(streams.get(stream) ?? []), ...intervals]);
      if (merged.length > 0) streams.set(stream, merged);
      else streams.delete(stream);
    }
    return new MySqlGtidSet(streams);
  }

  includes(gtid: string): boolean {
    const { stream, gno } = parse(gtid);
    return (this.streams.get(stream) ?? []).some(([start, end]) => start <= gno && gno <= end);
  }

  contains(other: GtidSet): boolean {
    sameEngine(this, other);
    return MySqlGtidSet.of(other).subtract(this).isEmpty();
  }

  isPast(gtid: string): boolean {
    const { stream, gno } = parse(gtid);
    return (this.streams.get(stream) ?? []).some(([, end]) => end > gno);
  }

  isNext(gtid: string): boolean {
    const { stream, gno } = parse(gtid);
    return (this.streams.get(stream)?.at(-1)?.[1] ?? 0n) + 1n === gno;
  }

  union(other: GtidSet): GtidSet {
    sameEngine(this, other);
    return MySqlGtidSet.build([...this.streams, ...MySqlGtidSet.of(other).streams]);
  }

  add(gtid: string): GtidSet {
    const { stream, gno } = parse(gtid);
    return MySqlGtidSet.build([...this.streams, [stream, [[gno, gno]]]]);
  }

  subtract(other: GtidSet): GtidSet {
    sameEngine(this, other);
    const theirs = MySqlGtidSet.of(other).streams;
    return MySqlGtidSet.build(
      [...this.streams].map(([stream, intervals]) => [stream, minus(intervals, theirs.get(stream) ?? [])]),
    );
  }

  intersect(other: GtidSet): GtidSet {
    return this.subtract(this.subtract(other));
  }

  isEmpty(): boolean {
    return this.streams.size === 0;
  }

  equals(other: GtidSet): boolean {
    return other.engine === this.engine && other.toString() === this.toString();
  }

  /** As MySQL prints gtid_executed: uuids in order, untagged intervals first, then each tag. */
  toString(): string {
    const byUuid = new Map<string, { tag: string; intervals: readonly Interval[] }[]>();
    for (const [stream, intervals] of this.streams) {
      const [uuid, tag = ""] = stream.split(":") as [string, string?];
      byUuid.set(uuid, [...(byUuid.get(uuid) ?? []), { tag, intervals }]);
    }
    return [...byUuid.keys()]
      .sort()
      .map((uuid) =>
        [
          uuid,
          ...byUuid
            .get(uuid)!
            .sort((a, b) => a.tag.localeCompare(b.tag))
            .map(({ tag, intervals }) => (tag ? `${tag}:` : "") + formatIntervals(intervals)),
        ].join(":"),
      )
      .join(",");
  }
}

function parseSet(text: string): GtidSet {
  const entries: [string, Interval[]][] = [];
  const compact = text.replace(/\s+/g, "").toLowerCase();
  for (const element of compact.split(",").filter(Boolean)) {
    const [uuid, ...parts] = element.split(":");
    if (!uuid || !UUID.test(uuid) || parts.length === 0) {
      throw gtidError(
        `"${element}" in GTID set "${text}" does not start with a server uuid and a range (${SYNTAX})`,
      );
    }
    let stream = uuid;
    for (const part of parts) {
      const range = RANGE.exec(part);
      if (range) {
        const start = BigInt(range[1]!);
        const end = range[2] === undefined ? start : BigInt(range[2]);
        if (start < 1n || end < start)
          throw gtidError(`"${part}" in GTID set "${text}" is not a valid range`);
        entries.push([stream, [[start, end]]]);
      } else if (TAG.test(part)) {
        stream = `${uuid}:${part}`;
      } else {
        throw gtidError(`"${part}" in GTID set "${text}" is neither a range nor a tag (${SYNTAX})`);
      }
    }
  }
  return MySqlGtidSet.build(entries);
}

export const mysqlGtids: GtidModel = {
  engine: "mysql",
  example: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
  isGtid(text) {
    try {
      parse(text);
      return true;
    } catch {
      return false;
    }
  },
  parseGtid(text) {
    const { stream, gno } = parse(text);
    return `${stream}:${gno}`;
  },
  parseSet,
  empty: () => new MySqlGtidSet(new Map()),
};
