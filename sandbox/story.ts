import path from "node:path";
import type { PhaseProgress } from "../core/contracts/restore-progress.js";
import { mariadbGtids } from "../core/gtid/mariadb.js";
import { readStreamStatus } from "../host-agent/binlog/stream-status.js";
import type { ExecutionResult, ScheduledCommandResult, ScheduledInvocationResult } from "./control-plane.js";
import type { MariaDbServer } from "./hosts/mariadb-server.js";
import { WORKLOAD_DB, WriteWorkload } from "./hosts/workload.js";
import { waitFor } from "./processes.js";
import { CLUSTER, type Sandbox, type SandboxHostState, waitForReplica } from "./sandbox.js";

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

/** A restore's phases as the agent reported them: "download 0.2 s (1.2 MiB), extract 3.1 s …". */
function phasesLine(result: unknown): string {
  const phases = (result as { phases?: PhaseProgress[] } | undefined)?.phases ?? [];
  return phases
    .map((p) => {
      const amount =
        p.unit === "bytes"
          ? p.total === null
            ? ""
            : ` (${(p.done / MiB).toFixed(1)} MiB)`
          : ` (${p.done} ${p.done === 1 ? p.unit.replace(/s$/, "") : p.unit})`;
      return `${p.phase} ${p.seconds ?? "?"} s${amount}`;
    })
    .join(", ");
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
 * document, verify) → scheduled retention → scheduled binlog shipping → DROP TABLE at a recorded moment →
 * the Restore state machine to the second before it, onto the standby → proofs row by row.
 */
/**
 * Fires the binlog watchdog schedule on every host: the shipping host reports its streamer and
 * the restorable lag, the others that they ship nothing. Returns the shipping host's lag.
 */
async function watchdog(
  sandbox: Sandbox,
  label: string,
  { info, prove }: Pick<StoryOptions, "info" | "prove">,
): Promise<number | null> {
  const ran = (await sandbox.controlPlane.fireSchedule(
    `rewind-binlogs-${CLUSTER}`,
  )) as ScheduledCommandResult;
  let lag: number | null = null;
  let shippers = 0;
  for (const host of ran.hosts) {
    const name = sandbox.state.hosts.find((candidate) => candidate.instanceId === host.instanceId)?.name;
    const result = host.result?.result as
      | { streamer?: string; role?: string; lagSeconds?: number | null; shipped?: string[] }
      | undefined;
    if (host.status !== "Success" || !result) {
      info(
        `${label} ${name}: ${host.status} ${host.result?.error?.message ?? host.stderr.trim().split("\n").at(-1)}`,
      );
      continue;
    }
    info(
      `${label} ${name}: streamer ${result.streamer}, ${result.role ?? "?"}${
        result.lagSeconds === null || result.lagSeconds === undefined
          ? ", ships nothing"
          : `, latest restorable point ${result.lagSeconds} s behind now`
      }`,
    );
    if (typeof result.lagSeconds === "number") {
      shippers++;
      lag = result.lagSeconds;
    }
  }
  prove(
    `${label}: one host ships (the primary, its streamer running) and the latest restorable point is within 10 s of now`,
    shippers === 1 && lag !== null && lag <= 10,
    `lag ${lag} s`,
  );
  return lag;
}

/** Waits until the streamer on the host in `role` has shipped everything `server` committed so far. */
async function waitShipped(
  sandbox: Sandbox,
  role: SandboxHostState["role"],
  server: MariaDbServer,
  info: StoryOptions["info"],
): Promise<void> {
  const position = mariadbGtids.parseSet(await server.gtidBinlogPos());
  const stateDir = path.join(sandbox.host(role).dir, "state");
  const started = Date.now();
  await waitFor(
    `binlog-stream on ${sandbox.host(role).name} to ship ${position}`,
    async () => {
      const shipped = readStreamStatus(stateDir)?.lastShippedGtid;
      return shipped ? mariadbGtids.parseSet(shipped).contains(position) : false;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  info(
    `binlog-stream shipped up to ${position} ${((Date.now() - started) / 1000).toFixed(1)} s after it was asked`,
  );
}

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
    step("Scheduled retention: rewind-expire-orders invokes the Retention Lambda, off the backup's path");
    const retention = (await sandbox.controlPlane.fireSchedule(
      `rewind-expire-${CLUSTER}`,
    )) as ScheduledInvocationResult;
    const report = retention.result as { deletedBackups?: string[]; refused?: string } | undefined;
    info(
      `retention      ${retention.ok ? `deleted ${report?.deletedBackups?.length ?? 0} backup(s)${report?.refused ? `; ${report.refused}` : ""}` : retention.error}`,
    );
    prove(
      "retention ran on its own schedule, as its own role, and kept the backup the window needs",
      retention.ok && (report?.deletedBackups ?? []).length === 0,
      retention.error ?? "",
    );

    step(
      "Binlogs stream to S3 as the primary writes (binlog-stream on every host; only the primary ships); the rewind-binlogs-orders watchdog reports",
    );
    let rpoSeconds: number | null = null;
    for (let round = 1; round <= options.shippingRounds; round++) {
      await sleep(2000);
      rpoSeconds = (await watchdog(sandbox, `round ${round}`, options)) ?? rpoSeconds;
    }

    step("Scheduled incremental backup: rewind-incr-orders starts Rewind-Backup with type incremental");
    const incrementalRun = expectSucceeded(
      (await sandbox.controlPlane.fireSchedule(`rewind-incr-${CLUSTER}`)) as ExecutionResult,
    );
    const incrementalSource = incrementalRun.source as { instanceId: string; reason: string };
    const incremental = incrementalRun.backup as {
      backupId: string;
      type: string;
      parentBackupId?: string;
      storedBytes: number;
      seconds: number;
    };
    info(`source         ${incrementalSource.instanceId} (${incrementalSource.reason})`);
    info(
      `backup id      ${incremental.backupId} (${incremental.type} on ${incremental.parentBackupId}), ${(incremental.storedBytes / MiB).toFixed(1)} MiB stored in ${incremental.seconds} s`,
    );
    prove(
      "the incremental was taken on the host holding the chain, built on the full backup, and verify checked both links",
      incremental.type === "incremental" &&
        incremental.parentBackupId === backup.backupId &&
        incrementalSource.instanceId === source.instanceId &&
        ((incrementalRun.verify as { chain?: string[] }).chain ?? []).length === 2,
      JSON.stringify({
        type: incremental.type,
        parent: incremental.parentBackupId,
        verify: incrementalRun.verify,
      }),
    );

    step("Disaster: DROP TABLE rewind_test.dataset, while the workload keeps writing");
    const targetSecond = Math.floor(Date.now() / 1000);
    const pointInTime = new Date(targetSecond * 1000).toISOString();
    await waitForReplica(primary, replica);
    const datasetBefore = await checksum(primary);
    await sleep((targetSecond + 1) * 1000 + 300 - Date.now());
    await primary.query(`DROP TABLE ${WORKLOAD_DB}.dataset`);
    info(`dropped at ${new Date().toISOString()}; the last good second is ${pointInTime}`);
    await sleep(1200);
    await waitShipped(sandbox, "primary", primary, info);
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
    info(`phases: ${phasesLine(tablesRun.restore)}`);
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
    info(`phases: ${phasesLine(restored.restore)}`);
    info(`the standby's previous datadir was kept as ${result.movedAside}`);
    const plannedChain = [
      ...((restored.plan as { chain?: { backupId: string }[] }).chain ?? []).map((link) => link.backupId),
      (restored.plan as { backupId: string }).backupId,
    ];
    prove(
      "the restore went through the chain (the full backup, then the incremental), replaying binlogs from the incremental's position",
      plannedChain.join(" ") === `${backup.backupId} ${incremental.backupId}`,
      plannedChain.join(" → "),
    );

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
      info(`phases: ${phasesLine(drill.restore)}`);
      prove(
        "the drill restored the newest backup through its chain (the full backup, then the incremental)",
        (drill.plan as { backupId?: string } | undefined)?.backupId === incremental.backupId,
        `plan ${JSON.stringify((drill.plan as { backupId?: string; chain?: unknown } | undefined) ?? {})}`,
      );
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

export interface FailoverReport {
  readonly pointInTime: string;
  readonly restoreSeconds: number;
  /** The sources the cluster's window runs through after the failover. */
  readonly windowSources: string[];
}

/**
 * The failover story, after runStory: with the workload writing, the primary is lost (`kill -9`
 * of its server and its streamer), the replica is promoted and takes the writes, its streamer
 * notices the new role and ships; then Rewind-Restore to a point after the failover, from the
 * backup taken before it, onto the standby, proven row by row.
 */
export async function runFailover(
  sandbox: Sandbox,
  { step, info, prove }: Pick<StoryOptions, "step" | "info" | "prove">,
): Promise<FailoverReport> {
  const { primary, replica, standby } = sandbox;
  step(
    "Failover: the primary's host is lost mid-workload (kill -9 of MariaDB and binlog-stream); the replica is promoted",
  );
  // Its client dies with the server.
  await WriteWorkload.start(primary, { pauseMs: 5 });
  await sleep(3000);
  await sandbox.streamer("primary").stop("SIGKILL");
  await primary.kill();
  info(`primary lost at ${new Date().toISOString()}, mid-workload`);
  // What an operator or an orchestrator does: the replica stops replicating and takes writes.
  await replica.query("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;");
  const after = await WriteWorkload.start(replica, { pauseMs: 5 });
  await sleep(4000);
  await after.stop();
  // A pause of more than two seconds: the target's whole second holds no commit.
  await sleep(2300);
  const targetSecond = Math.floor(Date.now() / 1000);
  const pointInTime = new Date(targetSecond * 1000).toISOString();
  await sleep((targetSecond + 1) * 1000 + 300 - Date.now());
  const later = await WriteWorkload.start(replica, { pauseMs: 5 });
  await sleep(1500);
  await later.stop();
  await waitShipped(sandbox, "replica", replica, info);
  const status = readStreamStatus(path.join(sandbox.host("replica").dir, "state"));
  prove(
    "the promoted replica's binlog-stream noticed its new role and ships",
    status?.role === "primary" && status.shipping,
    `role ${status?.role}, last shipped ${status?.lastShippedGtid}`,
  );

  step(
    `Restore after the failover: Rewind-Restore to ${pointInTime} onto the standby, from the backup taken before it`,
  );
  const input = {
    cluster: CLUSTER,
    targetInstanceId: sandbox.host("standby").instanceId,
    pointInTime,
    mode: "replace",
    datadir: sandbox.host("standby").datadir,
  };
  info(`input: ${JSON.stringify(input)}`);
  const started = Date.now();
  const restored = expectSucceeded(await sandbox.controlPlane.startExecution("Rewind-Restore", input));
  const restoreSeconds = (Date.now() - started) / 1000;
  const plan = restored.plan as {
    backupId: string;
    binlogs: { source: string; file: string; chunks?: number }[];
  };
  info(
    `restored in ${restoreSeconds.toFixed(1)} s: backup ${plan.backupId}, then ${plan.binlogs
      .map((binlog) => `${binlog.source}/${binlog.file}${binlog.chunks ? ` (${binlog.chunks} chunks)` : ""}`)
      .join(", ")}`,
  );
  const expected = await rowsUpTo(replica, targetSecond);
  const got = await rowsUpTo(standby, null);
  prove(
    `every row committed up to ${pointInTime}, after the failover, is there, and none after`,
    got.count === expected.count && got.maxId === expected.maxId && got.bad === 0,
    `${got.count} rows restored, ${expected.count} committed by then on the new primary, ${(await rowsUpTo(replica, null)).count} by now`,
  );
  const windowSources = [...new Set(plan.binlogs.map((binlog) => binlog.source))];
  return { pointInTime, restoreSeconds, windowSources };
}

export interface RollBackReport {
  readonly pointInTime: string;
  /** The history the promotion began, and the one it branched from. */
  readonly history: string;
  readonly parent: string;
  readonly promoteSeconds: number;
  readonly restoreSeconds: number;
}

/** Every row with its write time, as one digest: ids repeat across histories, write times do not. */
async function digest(server: MariaDbServer): Promise<string> {
  const [count, sum] = (
    await server.query(
      `SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, '/', written_at))), 0) FROM ${WriteWorkload.table}`,
    )
  )[0]!;
  return `${count} rows, digest ${sum}`;
}

/**
 * The second recovery, after runFailover, on a new history: a bad DELETE on the new primary (the
 * old replica), which goes on writing; Rewind-Restore of the standby to the second before it
 * with `promote` (roll back and carry on: the standby becomes the primary of a new history and
 * the old one is retired); writes on the standby; then Rewind-Restore to the latest point onto
 * the lost primary's host, which must hold the standby's rows exactly, and none of the discarded
 * future the DELETE belongs to.
 */
export async function runRollBack(
  sandbox: Sandbox,
  { step, info, prove }: Pick<StoryOptions, "step" | "info" | "prove">,
): Promise<RollBackReport> {
  const { replica, standby, primary } = sandbox;
  step("Roll back and carry on: a bad DELETE on the new primary, which keeps taking writes");
  const before = await WriteWorkload.start(replica, { pauseMs: 5 });
  await sleep(2000);
  await before.stop();
  await sleep(2300);
  const targetSecond = Math.floor(Date.now() / 1000);
  const pointInTime = new Date(targetSecond * 1000).toISOString();
  await sleep((targetSecond + 1) * 1000 + 300 - Date.now());
  const expected = await digest(replica);
  await replica.query(`DELETE FROM ${WriteWorkload.table} WHERE id % 2 = 0`);
  info(`DELETE without a proper WHERE on the new primary just after ${pointInTime}`);
  const discarded = await WriteWorkload.start(replica, { pauseMs: 5 });
  await sleep(2000);
  await discarded.stop();
  await waitShipped(sandbox, "replica", replica, info);

  step(
    `Rewind-Restore of the standby to ${pointInTime} with promote: it becomes the primary of a new history`,
  );
  const input = {
    cluster: CLUSTER,
    targetInstanceId: sandbox.host("standby").instanceId,
    pointInTime,
    mode: "replace",
    promote: true,
    datadir: sandbox.host("standby").datadir,
  };
  info(`input: ${JSON.stringify(input)}`);
  let started = Date.now();
  const promoted = expectSucceeded(await sandbox.controlPlane.startExecution("Rewind-Restore", input));
  const promoteSeconds = (Date.now() - started) / 1000;
  type Began = { began?: { id: string; parent: string } };
  const outcome = promoted.restore as (Began & { result?: Began }) | undefined;
  const began = outcome?.began ?? outcome?.result?.began ?? { id: "(none reported)", parent: "(none)" };
  prove(
    "the restore reports the history its promotion began",
    began.id !== "(none reported)",
    JSON.stringify(outcome).slice(0, 300),
  );
  prove(
    `the promoted standby holds exactly the new primary's rows at ${pointInTime}, before the DELETE, and takes writes`,
    (await digest(standby)) === expected && (await standby.scalar("SELECT @@read_only")) === "0",
    `${await digest(standby)}; expected ${expected}`,
  );
  info(`history ${began.id} began, branching from ${began.parent}; the old primary is retired`);
  await sandbox.streamer("replica").stop("SIGKILL");
  await replica.query("SET GLOBAL read_only = 1");
  const after = await WriteWorkload.start(standby, { pauseMs: 5 });
  await sleep(3000);
  await after.stop();
  await waitShipped(sandbox, "standby", standby, info);

  step("Second recovery on the new history: Rewind-Restore of the latest point onto the lost primary's host");
  const latestInput = {
    cluster: CLUSTER,
    targetInstanceId: sandbox.host("primary").instanceId,
    latest: true,
    mode: "replace",
    datadir: sandbox.host("primary").datadir,
  };
  info(`input: ${JSON.stringify(latestInput)}`);
  started = Date.now();
  const restored = expectSucceeded(await sandbox.controlPlane.startExecution("Rewind-Restore", latestInput));
  const restoreSeconds = (Date.now() - started) / 1000;
  const plan = restored.plan as { history?: string; binlogs: { source: string; file: string }[] };
  info(
    `restored in ${restoreSeconds.toFixed(1)} s on history ${plan.history}: ${plan.binlogs.map((binlog) => `${binlog.source}/${binlog.file}`).join(", ")}`,
  );
  const want = await digest(standby);
  const got = await digest(primary);
  prove(
    "the latest point on the new history: every row of the promoted standby, none of the discarded future (its DELETE included)",
    plan.history === began.id && got === want,
    `${got}; the standby has ${want}, the retired primary ${await digest(replica)}`,
  );
  prove(
    "the restored host came up read-only: it is no second primary",
    (await primary.scalar("SELECT @@read_only")) === "1",
  );
  return { pointInTime, history: began.id, parent: began.parent, promoteSeconds, restoreSeconds };
}
