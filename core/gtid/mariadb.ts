import { type GtidModel, type GtidSet, gtidError, sameEngine } from "./gtid-set.js";

/**
 * MariaDB GTIDs: `domain-server-seq`. A position holds the last GTID of each replication domain;
 * a transaction is in it when its domain's sequence number is at or below the position's.
 */
interface MariaDbGtid {
  readonly domain: number;
  readonly server: number;
  readonly seq: bigint;
}

const GTID = /^(\d+)-(\d+)-(\d+)$/;

function parse(text: string): MariaDbGtid {
  const match = GTID.exec(text.trim());
  if (!match) {
    throw gtidError(`"${text}" is not a MariaDB GTID; expected domain-server-sequence such as 0-1-1042`);
  }
  return { domain: Number(match[1]), server: Number(match[2]), seq: BigInt(match[3]!) };
}

const format = ({ domain, server, seq }: MariaDbGtid) => `${domain}-${server}-${seq}`;

class MariaDbPosition implements GtidSet {
  readonly engine = "mariadb" as const;
  constructor(private readonly domains: ReadonlyMap<number, MariaDbGtid>) {}

  private static of(other: GtidSet): MariaDbPosition {
    return other as MariaDbPosition;
  }

  includes(gtid: string): boolean {
    const parsed = parse(gtid);
    const last = this.domains.get(parsed.domain);
    return last !== undefined && parsed.seq <= last.seq;
  }

  contains(other: GtidSet): boolean {
    sameEngine(this, other);
    return [...MariaDbPosition.of(other).domains.values()].every((gtid) => this.includes(format(gtid)));
  }

  isPast(gtid: string): boolean {
    const parsed = parse(gtid);
    const last = this.domains.get(parsed.domain);
    return last !== undefined && last.seq > parsed.seq;
  }

  isNext(gtid: string): boolean {
    const parsed = parse(gtid);
    return (this.domains.get(parsed.domain)?.seq ?? 0n) + 1n === parsed.seq;
  }

  union(other: GtidSet): GtidSet {
    sameEngine(this, other);
    let result: MariaDbPosition = this;
    for (const gtid of MariaDbPosition.of(other).domains.values()) result = result.advance(gtid);
    return result;
  }

  add(gtid: string): GtidSet {
    return this.advance(parse(gtid));
  }

  private advance(gtid: MariaDbGtid): MariaDbPosition {
    const last = this.domains.get(gtid.domain);
    if (last && last.seq >= gtid.seq) return this;
    return new MariaDbPosition(new Map(this.domains).set(gtid.domain, gtid));
  }

  subtract(other: GtidSet): GtidSet {
    sameEngine(this, other);
    const theirs = MariaDbPosition.of(other).domains;
    return new MariaDbPosition(
      new Map([...this.domains].filter(([domain, gtid]) => (theirs.get(domain)?.seq ?? -1n) < gtid.seq)),
    );
  }

  intersect(other: GtidSet): GtidSet {
    sameEngine(this, other);
    const theirs = MariaDbPosition.of(other).domains;
    const both = new Map<number, MariaDbGtid>();
    for (const [domain, gtid] of this.domains) {
      const their = theirs.get(domain);
      if (their) both.set(domain, their.seq < gtid.seq ? their : gtid);
    }
    return new MariaDbPosition(both);
  }

  isEmpty(): boolean {
    return this.domains.size === 0;
  }

  equals(other: GtidSet): boolean {
    return other.engine === this.engine && other.toString() === this.toString();
  }

  toString(): string {
    return [...this.domains.values()]
      .sort((a, b) => a.domain - b.domain)
      .map(format)
      .join(",");
  }
}

export const mariadbGtids: GtidModel = {
  engine: "mariadb",
  example: "0-1-1042",
  isGtid: (text) => GTID.test(text.trim()),
  parseGtid: (text) => format(parse(text)),
  parseSet(text) {
    const domains = new Map<number, MariaDbGtid>();
    for (const part of text
      .split(",")
      .map((piece) => piece.trim())
      .filter(Boolean)) {
      const gtid = parse(part);
      if (domains.has(gtid.domain))
        throw gtidError(`GTID position "${text}" names domain ${gtid.domain} twice`);
      domains.set(gtid.domain, gtid);
    }
    return new MariaDbPosition(domains);
  },
  empty: () => new MariaDbPosition(new Map()),
};
