import { z } from "zod";

/**
 * The streamer's status file: the running `binlog-stream` writes it, the watchdog
 * (`binlog-push`) and the sandbox's status read it, all through this schema.
 */

/** The lock the streamer holds while it runs: binlog-push (the watchdog) ships nothing then. */
export const STREAM_LOCK = "binlog-stream.lock";

/**
 * What the running streamer last knew, in `stateDir/binlog-stream.json` (rewritten whole at most
 * once a second and after every chunk): the watchdog reports the cluster's restorable lag from it
 * without a request to S3.
 */
export const StreamStatus = z.object({
  pid: z.number().int(),
  updatedAt: z.iso.datetime(),
  source: z.string().nullable(),
  shipping: z.boolean(),
  role: z.enum(["primary", "replica", "read-only"]).nullable(),
  file: z.string().nullable(),
  /** Complete transactions in the binlog that are not in S3 yet, and when the oldest was seen. */
  pendingTransactions: z.number().int().nonnegative(),
  oldestPendingSince: z.iso.datetime().nullable(),
  lastShippedGtid: z.string().nullable(),
  lastShippedEventTime: z.iso.datetime().nullable(),
  lastChunkAt: z.iso.datetime().nullable(),
  lastError: z.string().nullable(),
  /** The history this host ships on (core/history), and why it is not the current one if so. */
  history: z.string().nullable().default(null),
  conflict: z.string().nullable().default(null),
  /**
   * Closed files not yet shipped whole and indexed (held only as chunks), and when the oldest
   * was closed; the last reason shipping or indexing them failed.
   */
  chunkOnlyFiles: z.number().int().nonnegative().default(0),
  chunkOnlySince: z.iso.datetime().nullable().default(null),
  closedError: z.string().nullable().default(null),
});
export type StreamStatus = z.infer<typeof StreamStatus>;

export const STREAM_STATUS_FILE = "binlog-stream.json";

/** Parses the file's text; undefined when it is missing, torn or from another shape. */
export function parseStreamStatus(text: string): StreamStatus | undefined {
  try {
    return StreamStatus.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
}
