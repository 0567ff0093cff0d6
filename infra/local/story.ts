import type { ExecutionResult, ScheduledCommandResult } from "./control-plane.js";
import type { MariaDbServer } from "./mariadb-server.js";
import { CLUSTER, type Sandbox, waitForReplica } from "./sandbox.js";
import { WORKLOAD_DB, WriteWorkload } from "./workload.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface StoryOptions {
  readonly shippingRounds: number;
  /** Also run the weekly restore drill. */
  readonly drill: boolean;
  readonly step: (text: string) => void;
  readonly info: (text: string) => void;
  readonly prove: (claim: string, ok: boolean, detail?: string) => void;
}

export interface StoryReport {
  readonly backupId: string;
  readonly backupSource: string;
  readonly rawBytes: number;
  readonly storedBytes: number;
  readonly backupSeconds: number;
  readonly rawMiBPerSecond: number;
  readonly rpoSeconds: number | null;
  readonly restoreSeconds: number;
  readonly tableRestoreSeconds: number;
  readonly replaySeconds: number;
  readonly pointInTime: string;
}

function expectSucceeded(execution: ExecutionResult): Record<string, unknown> {
  if (execution.status !== "SUCCEEDED") {
    throw new Error(
      `${execution.name} ${execution.executionName} failed with ${execution.error}: ${execution.cause}`,
    );
  }
  return execution.output!;
}

async function rowsUpTo(server: MariaDbServer, epochSecond: number | null) {
  const where = epochSecond === null ? "" : ` WHERE written_at < FROM_UNIXTIME(${epochSecond + 1})`;
  const [count, maxId, bad] = (
    await server.query(
      `SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(payload <> SHA2(id, 256)), 0) FROM ${WriteWorkload.table}${where}`,
    )
  )[0]!;
  return { count: Number(count), maxId: Number(maxId), bad: Number(bad) };
}

const checksum = async (server: MariaDbServer) =>
  (await server.query(`CHECKSUM TABLE ${WORKLOAD_DB}.dataset`))[0]![1];

/**
 * The story the demo tells and the end-to-end test checks, with a write workload running all
 * along: the scheduled full backup (Backup state machine: source by policy, agent via the SSM
 * document, verify, retention) → scheduled binlog shipping → DROP TABLE at a recorded moment →
 * the Restore state machine to the second before it, onto the standby → proofs row by row.
 */
export async function runStory(sandbox: Sandbox, options: StoryOptions): Promise<StoryReport> {
  const { step, info, prove } = options;
  const { primary, replica, standby } = sandbox;
  const workload = await WriteWorkload.start(primary, { pauseMs: 5 });
  try {
    await sleep(1000);
    step("Scheduled full backup: the rewind-full-orders schedule starts Rewind-Backup");
    const backupRun = await sandbox.controlPlane.fireSchedule(`rewind-full-${CLUSTER}`);
    const backed = expectSucceeded(backupRun as ExecutionResult);
    const source = backed.source as { instanceId: string; role: string; reason: string };
    const backup = backed.backup as {
      backupId: string;
      rawBytes: number;
      storedBytes: number;
      seconds: number;
      rawMiBPerSecond: number;
      segments: number;
    };
    info(`source         ${source.instanceId} (${source.role}: ${source.reason})`);
    info(`backup id      ${backup.backupId}`);
    info(
      `size           ${(backup.rawBytes / MiB).toFixed(1)} MiB raw → ${(backup.storedBytes / MiB).toFixed(1)} MiB stored in ${backup.segments} segment(s)`,
    );
    info(`throughput     ${backup.rawMiBPerSecond} MiB/s over ${backup.seconds} s`);
    prove(
      "the backup was taken from the healthy replica, per policy prefer-replica",
      source.instanceId === sandbox.host("replica").instanceId,
    );
    prove(
      "verify found every segment as the manifest says",
      (backed.verify as { verified?: boolean }).verified === true,
    );

    step("Scheduled binlog shipping: rewind-binlogs-orders sends binlog-push --flush to every tagged host");
    let rpoSeconds: number | null = null;
    const ship = async (label: string) => {
      await waitForReplica(primary, replica);
      const shipped = (await sandbox.controlPlane.fireSchedule(
        `rewind-binlogs-${CLUSTER}`,
      )) as ScheduledCommandResult;
      for (const host of shipped.hosts) {
        const result = host.result?.result as { shipped?: string[]; lagSeconds?: number | null } | undefined;
        const name = sandbox.state.hosts.find((candidate) => candidate.instanceId === host.instanceId)?.name;
        if (host.status !== "Success" || !result) {
          info(
            `${label} ${name}: ${host.status} ${host.result?.error?.message ?? host.stderr.trim().split("\n").at(-1)}`,
          );
          continue;
        }
        info(
          `${label} ${name}: shipped ${result.shipped?.length ?? 0} file(s), lag of the last shipped event ${result.lagSeconds} s`,
        );
        if (host.instanceId === source.instanceId) rpoSeconds = result.lagSeconds ?? null;
      }
      prove(
        `${label}: every host shipped`,
        shipped.hosts.every((host) => host.status === "Success"),
      );
    };
    for (let round = 1; round <= options.shippingRounds; round++) {
      await sleep(1000);
      await ship(`round ${round}`);
    }

    step("Disaster: DROP TABLE rewind_test.dataset, while the workload keeps writing");
    const targetSecond = Math.floor(Date.now() / 1000);
    const pointInTime = new Date(targetSecond * 1000).toISOString();
    await waitForReplica(primary, replica);
    const datasetBefore = await checksum(primary);
    await sleep((targetSecond + 1) * 1000 + 300 - Date.now());
    await primary.query(`DROP TABLE ${WORKLOAD_DB}.dataset`);
    info(`dropped at ${new Date().toISOString()}; the last good second is ${pointInTime}`);
    await sleep(1200);
    await ship("after the disaster");
    const afterDrop = await rowsUpTo(primary, null);

    step(
      `Undo the mistake: Rewind-Restore of ${WORKLOAD_DB}.dataset alone, to ${pointInTime}, into the live primary (mode tables)`,
    );
    const tablesInput = {
      cluster: CLUSTER,
      targetInstanceId: sandbox.host("primary").instanceId,
      pointInTime,
      mode: "tables",
      tables: [`${WORKLOAD_DB}.dataset`],
      replace: true,
    };
    info(`input: ${JSON.stringify(tablesInput)}`);
    const tablesStarted = Date.now();
    const tablesRun = expectSucceeded(
      await sandbox.controlPlane.startExecution("Rewind-Restore", tablesInput),
    );
    const tableRestoreSeconds = (Date.now() - tablesStarted) / 1000;
    const [copied] = (
      tablesRun.restore as {
        tables: { restoredAs: string; rows: { live: number }; bytes: number; seconds: number }[];
      }
    ).tables;
    info(
      `restored in ${tableRestoreSeconds.toFixed(1)} s: ${copied!.restoredAs}, ${copied!.rows.live} rows, ${(copied!.bytes / MiB).toFixed(1)} MiB copied through the primary's binlog in ${copied!.seconds} s`,
    );
    prove(
      "the dropped table is back on the live primary, identical, while the workload kept writing",
      (await checksum(primary)) === datasetBefore,
      `CHECKSUM ${datasetBefore}`,
    );
    const sinceDrop = (
      await primary.query(`SELECT COUNT(*) FROM ${WriteWorkload.table} WHERE id <= ${afterDrop.maxId}`)
    )[0]![0];
    prove(
      "every row the workload wrote after the drop is still there",
      Number(sinceDrop) === afterDrop.count,
      `${afterDrop.count} rows by the time the table restore began, ${(await rowsUpTo(primary, null)).count} now`,
    );
    await waitForReplica(primary, replica);
    prove(
      "the replica got the table back through the primary's binlog",
      (await checksum(replica)) === datasetBefore,
    );

    step(`Restore: Rewind-Restore to ${pointInTime} onto the standby (mode replace)`);
    const restoreInput = {
      cluster: CLUSTER,
      targetInstanceId: sandbox.host("standby").instanceId,
      pointInTime,
      mode: "replace",
      datadir: sandbox.host("standby").datadir,
    };
    info(`input: ${JSON.stringify(restoreInput)}`);
    const started = Date.now();
    const restored = expectSucceeded(
      await sandbox.controlPlane.startExecution("Rewind-Restore", restoreInput),
    );
    const restoreSeconds = (Date.now() - started) / 1000;
    const result = restored.restore as {
      binlogs: string[];
      gtidReached: string;
      replayedBy: string;
      replaySeconds: number;
      movedAside: string | null;
    };
    info(
      `restored in ${restoreSeconds.toFixed(1)} s: backup ${(restored.plan as { backupId: string }).backupId}, then ${result.binlogs.length} binlog(s) replayed by the ${result.replayedBy} in ${result.replaySeconds} s; GTID ${result.gtidReached}`,
    );
    info(`the standby's previous datadir was kept as ${result.movedAside}`);

    step("Proving the restore");
    prove(
      "the dropped table is back, identical",
      (await checksum(standby)) === datasetBefore,
      `CHECKSUM ${datasetBefore}`,
    );
    const expected = await rowsUpTo(primary, targetSecond);
    const got = await rowsUpTo(standby, null);
    prove(
      `every row committed up to ${pointInTime} (its whole second) is there, and none after`,
      got.count === expected.count && got.maxId === expected.maxId && got.bad === 0,
      `${got.count} rows restored, ${expected.count} committed by then, ${(await rowsUpTo(primary, null)).count} by now`,
    );

    if (options.drill) {
      step("Scheduled restore drill: rewind-drill-orders starts Rewind-RestoreDrill");
      const drill = expectSucceeded(
        (await sandbox.controlPlane.fireSchedule(`rewind-drill-${CLUSTER}`)) as ExecutionResult,
      );
      const drillResult = drill.restore as {
        gtidReached: string;
        scratch: { checkedTables: number; removed: boolean };
      };
      prove(
        "the newest backup restored on a scratch datadir, replayed to the newest shipped point, and CHECK TABLE passed",
        drillResult.scratch.checkedTables >= 1 && drillResult.scratch.removed,
        `GTID ${drillResult.gtidReached}, CHECK TABLE passed on ${drillResult.scratch.checkedTables} user tables`,
      );
    }
    return {
      backupId: backup.backupId,
      backupSource: source.instanceId,
      rawBytes: backup.rawBytes,
      storedBytes: backup.storedBytes,
      backupSeconds: backup.seconds,
      rawMiBPerSecond: backup.rawMiBPerSecond,
      rpoSeconds,
      restoreSeconds,
      tableRestoreSeconds,
      replaySeconds: result.replaySeconds,
      pointInTime,
    };
  } finally {
    await workload.stop();
  }
}
