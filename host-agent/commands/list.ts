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
    lastEventTime: string | null;
  }[];
  readonly windows: RestorableWindow[];
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
  lines.push("RESTORABLE WINDOW");
  for (const w of result.windows) {
    lines.push(`  source ${w.source}: ${w.from ?? "-"} → ${w.to ?? "-"} (GTID ${w.toGtid ?? "-"})`);
    for (const gap of w.gaps)
      lines.push(`    GAP after ${gap.after}: ${gap.reason}; the window is cut there`);
  }
  process.stderr.write(`${lines.join("\n")}\n`);
}

/** `rewind-agent list [--json]`: complete backups, shipped binlogs, and what a restore can reach. */
export async function list(context: AgentContext, json: boolean): Promise<ListResult> {
  // S3 is checked for every indexed file: list shows what a restore could really use.
  const catalog = await readCatalog(s3Client(context.config), context.config.bucket, context.location, {
    checkPresence: true,
  });
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
    binlogs: [...catalog.binlogs].map(([source, files]) => ({
      source,
      files: files.length,
      first: files[0]?.file ?? null,
      last: files.at(-1)?.file ?? null,
      lastEventTime: files.at(-1)?.lastEventTime ?? null,
    })),
    windows: [...new Set([...catalog.backups.map((b) => b.binlogSource), ...catalog.binlogs.keys()])].map(
      (source) => restorableWindow(source, catalog.backups, catalog.binlogs.get(source) ?? []),
    ),
  };
  if (!json) printTable(result);
  return result;
}
