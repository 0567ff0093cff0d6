import type { EngineName } from "../engine.js";
import { ErrorNames, RewindError } from "../errors.js";

/**
 * The GTIDs a server has executed, in its engine's terms: a MariaDB position (the last
 * `domain-server-seq` of each replication domain) or a MySQL GTID set (`uuid:1-5:7-9`, with 8.4+
 * tags `uuid:tag:3`). Rewind's rules (the restorable window, gap detection, planning, retention,
 * the applier's UNTIL clause) are written once against this type.
 */
export interface GtidSet {
  readonly engine: EngineName;
  /** Whether the one transaction `gtid` is in this set (already applied at this position). */
  includes(gtid: string): boolean;
  /** Whether every transaction of `other` is in this set. */
  contains(other: GtidSet): boolean;
  /**
   * Whether this set holds a transaction that comes after `gtid` in its own stream (the same
   * MariaDB domain, the same MySQL uuid and tag): a server at this position is past `gtid`.
   */
  isPast(gtid: string): boolean;
  /** Whether `gtid` is the next transaction of its stream after this set: no transaction between. */
  isNext(gtid: string): boolean;
  union(other: GtidSet): GtidSet;
  /** This set with `gtid` applied. */
  add(gtid: string): GtidSet;
  /**
   * What this set holds that `other` does not. For MariaDB positions: the domains where this one
   * is ahead, at this one's GTID.
   */
  subtract(other: GtidSet): GtidSet;
  /**
   * What both sets hold. For MariaDB positions: each domain both name, at the lower of the two
   * sequence numbers (the GTID of the one that is behind).
   */
  intersect(other: GtidSet): GtidSet;
  isEmpty(): boolean;
  equals(other: GtidSet): boolean;
  /** The server's own syntax, normalized (sorted, merged), as `gtid_executed` prints it. */
  toString(): string;
}

/** One engine's GTID syntax and arithmetic. */
export interface GtidModel {
  readonly engine: EngineName;
  /** How one GTID looks, for error messages. */
  readonly example: string;
  isGtid(text: string): boolean;
  /** A single GTID, normalized; a `GtidInvalid` error that shows the syntax otherwise. */
  parseGtid(text: string): string;
  parseSet(text: string): GtidSet;
  empty(): GtidSet;
}

export function gtidError(message: string): RewindError {
  return new RewindError(ErrorNames.gtidInvalid, message);
}

export function sameEngine(set: GtidSet, other: GtidSet): void {
  if (set.engine !== other.engine) {
    throw gtidError(
      `cannot combine a ${set.engine} GTID set (${set}) with a ${other.engine} one (${other}); the backups and binlogs of one cluster come from one engine`,
    );
  }
}
