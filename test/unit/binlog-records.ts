import type { BinlogRecord } from "../../core/binlog/manifest.js";

/** Minutes and seconds after 2026-11-21T10:00:00Z, as ISO times: the unit tests' clock. */
export const at = (minute: number, second = 0) =>
  new Date(Date.parse("2026-11-21T10:00:00Z") + minute * 60_000 + second * 1000).toISOString();

const hex = "0".repeat(64);

/** A shipped MariaDB binlog's record (`mariadb-bin.<n>` of `source`), with `fields` over the defaults. */
export function binlogRecord(source: string, n: number, fields: Partial<BinlogRecord>): BinlogRecord {
  return {
    engine: "mariadb",
    source,
    file: `mariadb-bin.${String(n).padStart(6, "0")}`,
    previousFile: null,
    size: 1000,
    sha256: hex,
    storedSha256: hex,
    firstEventTime: null,
    lastEventTime: null,
    lastCommitTime: null,
    gtidsBefore: "",
    gtidsAdded: "",
    firstGtid: null,
    lastGtid: null,
    transactions: 10,
    shippedAt: at(90),
    ...fields,
  };
}

/** A primary's three files: n holds 0-1-(100n-99 … 100n), written from minute 10(n-1) to 10n. */
export function primaryFiles(source: string): BinlogRecord[] {
  return [1, 2, 3].map((n) =>
    binlogRecord(source, n, {
      gtidsBefore: n > 1 ? `0-1-${100 * (n - 1)}` : "",
      gtidsAdded: `0-1-${100 * n}`,
      firstGtid: `0-1-${100 * (n - 1) + 1}`,
      lastGtid: `0-1-${100 * n}`,
      firstEventTime: at(10 * (n - 1)),
      lastEventTime: at(10 * n),
    }),
  );
}
