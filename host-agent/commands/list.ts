import { isChunked } from "../../core/binlog/chunk.js";
import { type RestorableWindow, restorableWindow } from "../../core/restorable-window.js";
import { readCatalog } from "../../core/store/catalog.js";
import { s3Client } from "../clients.js";
import type { AgentContext } from "../context.js";

export interface ListResult {
  readonly backups: {
    backupId: string;
    type: string;
    host: string;
    endTime: string;
    storedBytes: number;
    binlog: { file: string; position: number; gtidSet: string };
  }[];
  readonly incompleteBackups: string[];
  readonly binlogs: {
    source: string;
    files: number;
    first: string | null;
    last: string | null;
    /** The file the source is writing, shipped so far as chunks (binlog-stream). */
    streaming: { file: string; chunks: number; lastGtid: string | null } | null;
    lastEventTime: string | null;
  }[];
  /** The cluster's window, over every source's binlogs linked by GTID. */
  readonly window: RestorableWindow;
  /** The newest point a restore can reach now, and how far behind the present it is. */
  readonly latestRestorableTime: string | null;
  readonly lagSeconds: number | null;
}

const MiB = 1024 * 1024;

/** A table for people, on stderr: stdout keeps its one JSON result. */
function printTable(result: ListResult): void {
  const lines = [
    "BACKUPS",
    "  id                                     type  consistent at (end)        stored MiB  binlog position / GTID",
  ];
  for (const b of result.backups) {
    lines.push(
      `  ${b.backupId.padEnd(38)} ${b.type.padEnd(5)} ${b.endTime.padEnd(26)} ${(b.storedBytes / MiB).toFixed(1).padStart(10)}  ${b.binlog.file}:${b.binlog.position} ${b.binlog.gtidSet}`,
    );
  }
  for (const prefix of result.incompleteBackups) lines.push(`  (incomplete, never used) ${prefix}`);
  lines.push("BINLOGS");
  for (const b of result.binlogs) {
    const streaming = b.streaming ? `, streaming ${b.streaming.file} (${b.streaming.chunks} chunks)` : "";
    lines.push(
      `  ${b.source}: ${b.files} file(s) ${b.first ?? "-"} … ${b.last ?? "-"}${streaming}, last event ${b.lastEventTime ?? "-"}`,
    );
  }
  const w = result.window;
  lines.push("RESTORABLE WINDOW (cluster)");
  lines.push(
    `  ${w.from ?? "-"} → ${w.to ?? "-"} (GTID ${w.toGtid ?? "-"}) through ${w.sources.join(", ") || "no binlogs"}`,
  );
  if (result.lagSeconds !== null) lines.push(`  latest restorable time is ${result.lagSeconds} s behind now`);
  for (const gap of w.gaps) lines.push(`  GAP after ${gap.after}: ${gap.reason}; the window is cut there`);
  process.stderr.write(`${lines.join("\n")}\n`);
}

/** `rewind-agent list [--json]`: complete backups, shipped binlogs, and what a restore can reach. */
export async function list(context: AgentContext, json: boolean): Promise<ListResult> {
  // S3 is checked for every indexed file: list shows what a restore could really use.
  const catalog = await readCatalog(s3Client(context.config), context.config.bucket, context.location, {
    checkPresence: true,
  });
  const window = restorableWindow(catalog.backups, catalog.binlogs);
  const result: ListResult = {
    backups: catalog.backups.map((b) => ({
      backupId: b.backupId,
      type: b.type,
      host: b.host,
      endTime: b.endTime,
      storedBytes: b.storedBytes,
      binlog: b.binlog,
    })),
    incompleteBackups: catalog.incompleteBackups,
    binlogs: [...catalog.binlogs].map(([source, records]) => {
      const files = records.filter((record) => !isChunked(record));
      const streaming = records.filter(isChunked).at(-1);
      return {
        source,
        files: files.length,
        first: files[0]?.file ?? null,
        last: files.at(-1)?.file ?? null,
        streaming: streaming
          ? { file: streaming.file, chunks: streaming.chunks, lastGtid: streaming.lastGtid }
          : null,
        lastEventTime: records.at(-1)?.lastEventTime ?? null,
      };
    }),
    window,
    latestRestorableTime: window.to,
    lagSeconds: window.to === null ? null : Math.round((Date.now() - Date.parse(window.to)) / 1000),
  };
  if (!json) printTable(result);
  return result;
}
