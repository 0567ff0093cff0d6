import { statfsSync } from "node:fs";
import type { AgentContext } from "../context.js";
import { asBackupUser } from "../context.js";
import type { ReplicationState } from "../engines/engine.js";

export interface StatusResult {
  readonly engine: string;
  readonly version: string;
  readonly role: "primary" | "replica";
  readonly readOnly: boolean;
  readonly serverId: number;
  readonly serverUuid: string | null;
  readonly gtidExecuted: string;
  readonly replication: ReplicationState | null;
  readonly binlogs: { readonly file: string; readonly size: number }[];
  readonly datadir: string;
  readonly freeBytes: number | null;
  readonly binlogSource: string;
}

export function freeBytes(dir: string): number | null {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return null;
  }
}

/** `rewind-agent status`: what select-source needs to choose a host (DESIGN §4). */
export async function status(context: AgentContext): Promise<StatusResult> {
  return asBackupUser(context, async (_file, sql) => {
    const identity = await context.engine.readServerIdentity(sql);
    const replication = await context.engine.readReplication(sql);
    const binlogs = identity.logBin ? await sql.rows("SHOW BINARY LOGS") : [];
    return {
      engine: context.engine.name,
      version: identity.version,
      role: replication ? "replica" : "primary",
      readOnly: identity.readOnly,
      serverId: identity.serverId,
      serverUuid: identity.serverUuid,
      gtidExecuted: identity.gtidExecuted,
      replication,
      binlogs: binlogs.map((row) => ({ file: row.Log_name ?? "", size: Number(row.File_size ?? 0) })),
      datadir: identity.datadir,
      freeBytes: freeBytes(identity.datadir),
      binlogSource: context.engine.binlogSource(identity, context.config.host),
    };
  });
}
