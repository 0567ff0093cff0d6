import { type AgentStatus, STATUS_NEWEST_BINLOGS } from "../../core/agent-output.js";
import { readBackupLineage } from "../backup/lineage.js";
import type { AgentContext } from "../context.js";
import { asBackupUser } from "../context.js";
import { freeBytes } from "../disk.js";
import { readServerRole } from "../engines/engine.js";

/** The status shape is core's contract with select-source. */
export type StatusResult = AgentStatus;

/** `rewind-agent status`: what select-source needs to choose a host (DESIGN §4). */
export async function status(context: AgentContext): Promise<StatusResult> {
  return asBackupUser(context, async (_file, sql) => {
    const { identity, replication, role } = await readServerRole(context.engine, sql);
    const binlogs = identity.logBin ? await sql.rows("SHOW BINARY LOGS") : [];
    const lineage = readBackupLineage(context.config.stateDir);
    return {
      engine: context.engine.name,
      version: identity.version,
      // select-source's contract: replica or not; readOnly says the rest.
      role: role === "replica" ? "replica" : "primary",
      readOnly: identity.readOnly,
      serverId: identity.serverId,
      serverUuid: identity.serverUuid,
      gtidExecuted: identity.gtidExecuted,
      replication,
      // Bounded whatever the host holds (SSM keeps 24,000 characters of output).
      binlogs: {
        count: binlogs.length,
        totalBytes: binlogs.reduce((sum, row) => sum + Number(row.File_size ?? 0), 0),
        first: binlogs[0]?.Log_name ?? null,
        newest: binlogs
          .slice(-STATUS_NEWEST_BINLOGS)
          .map((row) => ({ file: row.Log_name ?? "", size: Number(row.File_size ?? 0) })),
      },
      datadir: identity.datadir,
      freeBytes: freeBytes(identity.datadir),
      binlogSource: context.engine.binlogSource(identity, context.config.host),
      ...(lineage && lineage.datadir === identity.datadir
        ? { lastBackup: { backupId: lineage.backupId, incrementals: lineage.incrementals } }
        : {}),
    };
  });
}
