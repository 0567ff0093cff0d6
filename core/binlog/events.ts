/** Binary log event types that matter to Rewind (MySQL and MariaDB share the numbering below 160). */
export const EventType = {
  query: 2,
  stop: 3,
  rotate: 4,
  formatDescription: 15,
  xid: 16,
  mysqlGtid: 33,
  mysqlAnonymousGtid: 34,
  mysqlPreviousGtids: 35,
  mysqlTransactionPayload: 40,
  mysqlGtidTagged: 42,
  mariadbAnnotateRows: 160,
  mariadbBinlogCheckpoint: 161,
  mariadbGtid: 162,
  mariadbGtidList: 163,
  mariadbStartEncryption: 164,
} as const;

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const EVENT_HEADER_LENGTH = 19;

export interface EventHeader {
  /** Seconds since the epoch: when the statement started on the source. */
  readonly timestamp: number;
  readonly type: number;
  readonly serverId: number;
  readonly size: number;
  /** Offset of this event in the file. */
  readonly position: number;
  /** Offset just after it (`end_log_pos`). */
  readonly endPosition: number;
  readonly flags: number;
}
