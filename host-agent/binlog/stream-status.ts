import { readFileSync } from "node:fs";
import path from "node:path";
import {
  parseStreamStatus,
  STREAM_STATUS_FILE,
  type StreamStatus,
} from "../../core/contracts/stream-status.js";

export { STREAM_LOCK, STREAM_STATUS_FILE, StreamStatus } from "../../core/contracts/stream-status.js";

/** The running streamer's status file under the state dir (core/contracts/stream-status.ts). */
export function readStreamStatus(stateDir: string): StreamStatus | undefined {
  try {
    return parseStreamStatus(readFileSync(path.join(stateDir, STREAM_STATUS_FILE), "utf8"));
  } catch {
    return undefined;
  }
}
