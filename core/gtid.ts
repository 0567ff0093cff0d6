/**
 * MariaDB GTID positions: one `domain-server-seq` per replication domain, e.g. `0-1-100,1-2-7`.
 * A transaction is "in" a position when its domain's sequence number is at or below it.
 */
export interface MariaDbGtid {
  readonly domain: number;
  readonly server: number;
  readonly seq: bigint;
}

export function formatGtid({ domain, server, seq }: MariaDbGtid): string {
  return `${domain}-${server}-${seq}`;
}

export function parseGtid(text: string): MariaDbGtid {
  const match = /^(\d+)-(\d+)-(\d+)$/.exec(text.trim());
  if (!match)
    throw new Error(`"${text}" is not a MariaDB GTID; expected domain-server-sequence such as 0-1-1042`);
  return { domain: Number(match[1]), server: Number(match[2]), seq: BigInt(match[3]!) };
}

/** A GTID position: the last GTID of each domain. */
export type GtidPosition = ReadonlyMap<number, MariaDbGtid>;

export function parseGtidPosition(text: string): GtidPosition {
  const position = new Map<number, MariaDbGtid>();
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const gtid = parseGtid(part);
    if (position.has(gtid.domain))
      throw new Error(`GTID position "${text}" names domain ${gtid.domain} twice`);
    position.set(gtid.domain, gtid);
  }
  return position;
}

export function formatGtidPosition(position: GtidPosition): string {
  return [...position.values()]
    .sort((a, b) => a.domain - b.domain)
    .map(formatGtid)
    .join(",");
}

/** Whether `gtid` is already applied at `position`. */
export function positionIncludes(position: GtidPosition, gtid: MariaDbGtid): boolean {
  const last = position.get(gtid.domain);
  return last !== undefined && gtid.seq <= last.seq;
}

/** The position after applying `gtid`. */
export function advance(position: GtidPosition, gtid: MariaDbGtid): GtidPosition {
  const next = new Map(position);
  next.set(gtid.domain, gtid);
  return next;
}
