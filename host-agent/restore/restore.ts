import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { PhaseProgress } from "../../core/contracts/restore-progress.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import { gtidModel } from "../../core/gtid/index.js";
import { INITIAL_HISTORY } from "../../core/history.js";
import { restoreProgressKey, restoreReportKey } from "../../core/layout.js";
import { parseRestoreTarget, type RestorePlan, type RestoreTarget } from "../../core/restore-plan.js";
import type { RestoreBinlog } from "../../core/store/plan-from-store.js";
import { planWithManifests } from "../../core/store/plan-from-store.js";
import { loadPlannedRestore, StoredRestorePlan } from "../../core/store/planned-restore.js";
import { formatMicros } from "../../core/time.js";
import { tablesInStream } from "../../core/xbstream.js";
import { forgetBackupLineage } from "../backup/lineage.js";
import { s3Client } from "../clients.js";
import { type AgentContext, asRestoreUser, replicationCredentials } from "../context.js";
import { dataKeyring } from "../encryption.js";
import type { ReplicationState } from "../engines/engine.js";
import { activeBinlogFile, beginHistory, continueBinlogNumbering, writeHostHistory } from "../history.js";
import { acquireHostLock } from "../lock.js";
import { log } from "../log.js";
import { putJson } from "../s3/put-json.js";
import type { SqlClient } from "../sql-client.js";
import { runTool } from "../tool.js";
import { replayFromLocalServer, replayFromRelayLogs } from "./applier.js";
import { binlogBytes, fetchBinlogs, ReplayMeter, replayBinlogs, replayRange } from "./binlogs.js";
import { checkTarget, installBackup } from "./datadir.js";
import { storedBytesToExtract } from "./extract.js";
import {
  addPartialStats,
  noPartialStats,
  PartialRestoreImpossible,
  type PartialStats,
  type ReplicationFilter,
  XbstreamFilter,
} from "./partial.js";
import { startPrivateServer } from "./private-server.js";
import { RestoreProgress } from "./progress.js";

export interface RestoreOptions {
  readonly backupId?: string;
  readonly until?: string;
  /** A plan file (or s3:// URI) holding {"until": …} or {"backupId": …}. */
  readonly plan?: string;
  /** That plan, already read (readPlan): it is not read again. */
  readonly planned?: PlanRead;
  readonly datadir: string;
  readonly moveAside: boolean;
  readonly dryRun: boolean;
  /** Leave the prepared datadir for someone else to start (no replay possible then). */
  readonly noStart: boolean;
  /**
   * Restore into an empty scratch datadir served by a private server (not `server.start`), check
   * it, then stop that server and remove the datadir: a restore drill that leaves nothing behind.
   */
  readonly scratch?: boolean;
  /** `host:port` of the primary to replicate from once restored. */
  readonly replicaOf?: string;
  /** How long to wait for the new replica to catch up. */
  readonly catchUpSeconds?: number;
  /**
   * Make the restored server the writable primary, beginning a new history that branches at the
   * point restored to (core/history). Without it the server stays read-only.
   */
  readonly promote?: boolean;
  /** Resolve the target on this history instead of the current one (forensics). */
  readonly history?: string;
  /** The server's replication applier (parallel), or `mariadb-binlog | mariadb` as the fallback. */
  readonly replay: "applier" | "client";
  /** Checks the plan before anything is downloaded (a table restore: the scratch space). */
  readonly beforeFetch?: (plan: RestorePlan<RestoreBinlog>) => Promise<void>;
  /** Checks the fetched binlogs before the backup is downloaded (a table restore: the tables exist). */
  readonly beforeBackup?: (
    plan: RestorePlan<RestoreBinlog>,
    binlogFiles: readonly string[],
    /** Where replay starts in the first of them (the backup's position). */
    startPosition: number,
  ) => Promise<void>;
  /**
   * Runs once the backup is downloaded, verified and unpacked, before it is prepared, with the
   * tables its files hold (core/xbstream's tablesInStream).
   */
  readonly afterExtract?: (
    plan: RestorePlan<RestoreBinlog>,
    tablesInBackup: readonly string[],
  ) => Promise<void>;
  /**
   * What a scratch restore does on its private server once replayed, instead of CHECK TABLE on
   * every table (a table restore: copy the chosen tables into the live primary).
   */
  readonly onScratch?: (scratch: {
    sql: SqlClient;
    defaultsFile: string;
    /** The restore's progress: the copy is its last phase. */
    progress: RestoreProgress;
  }) => Promise<Record<string, unknown>>;
  /**
   * A partial scratch restore (a table restore, MariaDB, replayed by the applier): only the files
   * `keep` accepts are extracted, and the applier replays only the transactions `filter` names.
   * Whatever makes it impossible throws PartialRestoreImpossible before the result is used, so
   * the caller restores the whole backup instead.
   */
  readonly partial?: {
    readonly keep: (path: string) => boolean;
    readonly filter: ReplicationFilter;
    /** Runs on the scratch server before replay: throws PartialRestoreImpossible when unsafe. */
    readonly check: (sql: SqlClient) => Promise<void>;
  };
}

export interface RestoreResult {
  readonly backupId: string;
  /** The backups restored, the full one first (more than one: through incrementals). */
  readonly chain: readonly string[];
  readonly datadir: string;
  readonly target: RestoreTarget;
  readonly binlogs: string[];
  readonly dryRun: boolean;
  readonly movedAside?: string | null;
  /** The GTID position of the restored server after replay. */
  readonly gtidReached?: string;
  readonly lastTransaction?: { gtid: string; time: string } | null;
  readonly replayedBy?: "applier" | "client" | "none";
  readonly replaySeconds?: number;
  readonly replication?: ReplicationState;
  readonly seconds?: number;
  /** What a scratch restore found on its private server before removing it. */
  readonly scratch?: {
    readonly checkedTables: number;
    readonly removed: boolean;
  };
  /** What `onScratch` did. */
  readonly onScratch?: Record<string, unknown>;
  /** Whether the restored server was left read-only (not promoted, or a replica). */
  readonly readOnly?: boolean;
  /** The history the target resolved on, and the one a promotion began. */
  readonly history?: string;
  readonly began?: { id: string; parent: string; branch: { gtids: string; time: string | null } };
  /** Each phase that ran, in order, with its duration and how much it did. */
  readonly phases?: PhaseProgress[];
  /**
   * A partial restore's extraction (what reached the scratch datadir and what did not) and
   * replay (the transactions left out before the applier, binlog-filter.ts).
   */
  readonly partial?: PartialStats & { skippedTransactions?: number; replayedTransactions?: number };
}

/**
 * A plan from plan-restore is executed exactly as verified (plan once); a hand-written plan file
 * holding only {"until": …} or {"backupId": …} is planned here.
 */
export type PlanRead = { readonly stored?: StoredRestorePlan; readonly target: RestoreTarget };

export async function readPlan(context: AgentContext, where: string): Promise<PlanRead> {
  let text: string;
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(where);
  if (s3) {
    const object = await s3Client(context.config).send(new GetObjectCommand({ Bucket: s3[1], Key: s3[2] }));
    text = await object.Body!.transformToString();
  } else {
    text = readFileSync(where, "utf8");
  }
  const plan = JSON.parse(text) as { until?: string; backupId?: string };
  const stored = StoredRestorePlan.safeParse(plan);
  if (stored.success) return { stored: stored.data, target: stored.data.target };
  if (plan.until) return { target: parseRestoreTarget(plan.until) };
  if (plan.backupId) return { target: { kind: "backup", backupId: plan.backupId } };
  throw new RewindError(
    ErrorNames.usage,
    `plan ${where} is neither a plan from plan-restore nor names a target: give "until" or "backupId"`,
  );
}

function targetFromFlags(options: RestoreOptions): RestoreTarget {
  if (options.until) return parseRestoreTarget(options.until);
  if (options.backupId) return { kind: "backup", backupId: options.backupId };
  throw new RewindError(
    ErrorNames.usage,
    "say what to restore: --until <time|gtid>, --backup-id ID or --plan FILE",
  );
}

async function runServerCommand(command: readonly string[], what: string): Promise<void> {
  try {
    await runTool(command[0]!, command.slice(1));
  } catch (error) {
    throw new RewindError(
      ErrorNames.serverControl,
      `could not ${what} the database server with \`${command.join(" ")}\`: ${(error as Error).message}; fix server.${what} in the agent config`,
    );
  }
}

/**
 * `rewind-agent restore (--until T | --backup-id ID | --plan P) --datadir DIR [--move-aside] [--dry-run]`.
 * A plan in S3 (from the Restore state machine) gets its outcome written beside it as
 * `report.json` (DESIGN §3), success or failure, for whoever audits the restore later.
 */
export async function restore(context: AgentContext, options: RestoreOptions): Promise<RestoreResult> {
  // The plan says where its report goes (restores/<restoreId>/report.json), not its URI.
  const planned = options.planned ?? (options.plan ? await readPlan(context, options.plan) : undefined);
  const restoreId = planned?.stored?.restoreId;
  const { config, location } = context;
  // Where the restore is, for whoever watches it: restores/<id>/progress.json and the log.
  const progress = new RestoreProgress({
    restoreId: options.dryRun ? undefined : restoreId,
    host: config.host,
    kind: !options.scratch ? "whole" : options.onScratch ? "tables" : "scratch",
    sink: (record) =>
      putJson(s3Client(config), config.bucket, restoreProgressKey(location, record.restoreId), record),
  });
  const report = async (outcome: Record<string, unknown>) => {
    if (!restoreId || options.dryRun) return;
    const key = restoreReportKey(location, restoreId);
    await putJson(s3Client(config), config.bucket, key, {
      ...outcome,
      host: config.host,
      datadir: path.resolve(options.datadir),
      finishedAt: new Date().toISOString(),
      phases: progress.phases(),
    }).catch((error: Error) =>
      log("warn", "could not write the restore report", { key, error: error.message }),
    );
  };
  try {
    const result = await restoreFromPlan(context, { ...options, ...(planned ? { planned } : {}) }, progress);
    await progress.finish(true);
    const withPhases = options.dryRun ? result : { ...result, phases: progress.phases() };
    await report({ ok: true, result: withPhases });
    return withPhases;
  } catch (error) {
    await progress.finish(false);
    const name = error instanceof RewindError ? error.name : "AgentError";
    await report({ ok: false, error: { name, message: (error as Error).message } });
    throw error;
  }
}

/** What the steps of one restore share once it is planned. */
interface RestoreRun {
  readonly context: AgentContext;
  readonly progress: RestoreProgress;
  readonly options: RestoreOptions;
  readonly plan: RestorePlan<RestoreBinlog>;
  readonly datadir: string;
  readonly client: ReturnType<typeof s3Client>;
  readonly replicaSource: { host: string; port: number } | undefined;
  readonly summary: {
    readonly backupId: string;
    readonly chain: readonly string[];
    readonly datadir: string;
    readonly target: RestoreTarget;
    readonly history: string | undefined;
    readonly binlogs: string[];
  };
}

/**
 * Plans, fetches and verifies everything, and only then touches the datadir; starts the server
 * and replays the binlogs from the backup's exact position to the target.
 */
async function restoreFromPlan(
  context: AgentContext,
  options: RestoreOptions,
  progress: RestoreProgress,
): Promise<RestoreResult> {
  const run = await planRestoreRun(context, options, progress);
  const { config } = context;
  const { plan, datadir, summary } = run;
  if (options.dryRun) return { ...summary, dryRun: true };
  checkTarget(datadir, options.moveAside);
  await options.beforeFetch?.(plan);
  if (options.noStart && plan.binlogs.length > 0) {
    throw new RewindError(
      ErrorNames.usage,
      `reaching ${options.until ?? "the target"} needs binlog replay on a running server; drop --no-start`,
    );
  }

  const release = acquireHostLock(config.stateDir, `restore to ${datadir}`);
  const started = Date.now();
  mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
  sweepStaleWork(config.workDir, datadir);
  const work = mkdtempSync(path.join(config.workDir, "restore-"));
  try {
    const { range, binlogDir, movedAside, partial } = await fetchAndInstall(run, work);
    if (options.noStart) {
      return { ...summary, dryRun: false, movedAside, seconds: (Date.now() - started) / 1000 };
    }
    const replayed = await startAndReplay(run, work, binlogDir, range);
    const last = range.lastTransaction;
    return {
      ...summary,
      binlogs: range.files,
      replayedBy: replayed.replayedBy,
      replaySeconds: replayed.replaySeconds,
      dryRun: false,
      movedAside,
      gtidReached: replayed.gtidReached,
      lastTransaction: last?.gtid
        ? { gtid: last.gtid, time: formatMicros(last.commitMicros ?? last.timestamp * 1e6) }
        : null,
      seconds: (Date.now() - started) / 1000,
      ...(options.scratch ? {} : { readOnly: !replayed.began }),
      ...(replayed.began ? { began: replayed.began } : {}),
      ...(replayed.replication ? { replication: replayed.replication } : {}),
      ...(options.scratch
        ? { scratch: { checkedTables: replayed.checkedTables, removed: !existsSync(datadir) } }
        : {}),
      ...(replayed.onScratch ? { onScratch: replayed.onScratch } : {}),
      ...(partial ? { partial: { ...partial, ...replayed.prefiltered } } : {}),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
    release();
  }
}

/** Step 1: every input checked, then the plan (the stored one, verified, or one made now). */
async function planRestoreRun(
  context: AgentContext,
  options: RestoreOptions,
  progress: RestoreProgress,
): Promise<RestoreRun> {
  const { config, location } = context;
  const { stored, target } =
    options.planned ??
    (options.plan
      ? await readPlan(context, options.plan)
      : { stored: undefined, target: targetFromFlags(options) });
  const datadir = path.resolve(options.datadir);
  const client = s3Client(config);
  // Every input is checked before planning touches S3.
  const replicaSource = options.replicaOf ? parseHostPort(options.replicaOf) : undefined;
  // The replication account must be readable before anything is touched.
  if (replicaSource) await replicationCredentials(context);
  if (stored && options.history !== undefined && options.history !== (stored.history ?? INITIAL_HISTORY)) {
    throw new RewindError(
      ErrorNames.usage,
      `the plan was made on history ${stored.history ?? INITIAL_HISTORY}; drop --history or plan again with the history you want`,
    );
  }
  const plan: RestorePlan<RestoreBinlog> = stored
    ? await loadPlannedRestore(client, config.bucket, location, stored)
    : await planWithManifests(client, config.bucket, location, target, options.history);
  if (options.scratch && (options.moveAside || options.noStart || replicaSource)) {
    throw new RewindError(
      ErrorNames.usage,
      "--scratch restores into an empty directory of its own; drop --move-aside, --no-start and --replica-of",
    );
  }
  if (options.promote && (options.scratch || options.noStart || replicaSource)) {
    throw new RewindError(
      ErrorNames.usage,
      "--promote makes the restored server the writable primary; it cannot go with --scratch, --no-start or --replica-of",
    );
  }
  const summary = {
    backupId: plan.backup.backupId,
    chain: plan.chain.map((link) => link.backupId),
    datadir,
    target,
    history: plan.history,
    binlogs: plan.binlogs.map((binlog) => binlog.file),
  };
  return { context, progress, options, plan, datadir, client, replicaSource, summary };
}

/** Step 2: the binlogs fetched and verified, then the backup installed in the datadir. */
async function fetchAndInstall(run: RestoreRun, work: string) {
  const { context, options, plan, datadir, client, progress } = run;
  const { config, engine } = context;
  const keyring = dataKeyring(config).keyring;
  const transfer = { client, bucket: config.bucket, keyring, concurrency: config.backup.uploadConcurrency };
  const binlogDir = path.join(work, "binlogs");
  progress.begin("download", "bytes", binlogBytes(plan));
  await fetchBinlogs(plan, binlogDir, {
    ...transfer,
    onBytes: (bytes) => {
      progress.advance(bytes);
      context.heartbeat();
    },
  });
  const range = await replayRange(plan, binlogDir);
  log("info", "binlogs fetched and verified", {
    runs: range.runs.map((r) => ({ files: r.files, start: r.startPosition, stop: r.stopPosition })),
  });
  await options.beforeBackup?.(
    plan,
    range.files.map((file) => path.join(binlogDir, file)),
    range.runs[0]?.startPosition ?? 4,
  );
  // A partial copy needs the applier's table filter: binlogs that switch sources are replayed by
  // the client, which has none.
  if (options.partial && replayedByFor(range, options) === "client") {
    throw new PartialRestoreImpossible(
      "the binlogs up to the target switch sources, which the client replays, and it cannot skip other tables",
    );
  }
  // One filter per link of the chain; their stats add up.
  const filters: XbstreamFilter[] = [];
  const keep = options.partial?.keep;
  const stats = (): PartialStats | undefined =>
    keep ? filters.map((filter) => filter.stats).reduce(addPartialStats, noPartialStats()) : undefined;
  progress.begin(
    "extract",
    "bytes",
    plan.chain.reduce((sum, link) => sum + storedBytesToExtract(link, keep), 0),
  );
  const { movedAside } = await installBackup(plan.chain, datadir, {
    ...transfer,
    engine,
    moveAside: options.moveAside,
    onBytes: (bytes) => {
      progress.advance(bytes);
      context.heartbeat();
    },
    // mariabackup/xtrabackup --prepare reports no total to measure against.
    beforePrepare: () => progress.begin("prepare", "bytes", null),
    ...(keep
      ? {
          filter: () => {
            const filter = new XbstreamFilter(keep);
            filters.push(filter);
            return filter;
          },
        }
      : {}),
    afterExtract: async (dirs: readonly string[]) => {
      const partial = stats();
      if (partial && partial.renames.length > 0) {
        throw new PartialRestoreImpossible(
          `the backup recorded tables renamed while it ran (${partial.renames.join(", ")}), which its prepare applies by name`,
        );
      }
      if (partial)
        log("info", "partial extraction: only the chosen tables' files and the system's", { ...partial });
      // The last link holds every table the chain restores (an incremental carries each table's
      // definition, and deltas for every InnoDB file, changed or not).
      if (options.afterExtract) await options.afterExtract(plan, tablesInDirectory(dirs.at(-1)!));
    },
    beforeSwap: async () => {
      // The datadir is about to be replaced: no incremental may build on what was there.
      if (!options.scratch) forgetBackupLineage(config.stateDir, datadir);
      if (options.moveAside && !options.scratch)
        await runServerCommand(config.server.stop, "stop").catch(() => undefined);
    },
  });
  progress.end();
  return { range, binlogDir, movedAside, partial: stats() };
}

/**
 * Step 3: the server started on the datadir (the host's, or a private scratch one), the binlogs
 * replayed to the target and the position checked; then, on the host's server, the binlog
 * numbering carried on, a new history begun (--promote) and replication set up (--replica-of).
 */
async function startAndReplay(
  run: RestoreRun,
  work: string,
  binlogDir: string,
  range: Awaited<ReturnType<typeof replayRange>>,
) {
  const { context, options, plan, datadir, client, replicaSource, progress } = run;
  const { config, engine } = context;
  // Replay's progress: bytes of the binlogs' replayed stretches, as the applier or the decoder
  // reaches them (never backwards).
  const meter = new ReplayMeter(range, binlogDir);
  let replayedBytes = 0;
  const replayedTo = (done: number | undefined) => {
    if (done === undefined || done <= replayedBytes) return;
    replayedBytes = done;
    progress.advance(done);
  };
  progress.begin("replay", "bytes", meter.total);
  // A chain that switches sources replays each source's stretch from its own position, which
  // the client does run by run; one stretch goes through the applier when asked.
  const replayedBy = replayedByFor(range, options);
  if (replayedBy !== options.replay && range.files.length > 0) {
    log("info", "the binlogs switch sources; replaying them with the client, source by source", {
      sources: range.runs.map((run) => run.source),
    });
  }
  // Checked before the server is used for anything (a table copy, replication, a report).
  const checkReached = (lastGtid: string | null | undefined, reached: string) => {
    if (lastGtid && !gtidModel(engine.name).parseSet(reached).includes(lastGtid)) {
      throw new RewindError(
        ErrorNames.replay,
        `after replay the server is at GTID ${reached}, not at ${range.untilPosition} as planned; do not use it before checking why`,
      );
    }
  };
  const applier = {
    engine,
    range: range.runs[0]!,
    binlogDir,
    workDir: work,
    parallelWorkers: config.restore.parallelWorkers,
    heartbeat: context.heartbeat,
    timeoutSeconds: config.restore.replayTimeoutSeconds,
    onExecuted: (file: string, position: number) => replayedTo(meter.doneAtFile(0, file, position)),
  };
  let replaySeconds = 0;
  // MySQL's applier reads the binlogs as relay logs of a private server on the datadir, before
  // the host's server (or the scratch server) starts on it.
  if (replayedBy === "applier" && engine.applierSource === "relay-log") {
    const replayStarted = Date.now();
    await replayFromRelayLogs({ ...applier, datadir });
    replaySeconds = (Date.now() - replayStarted) / 1000;
  }
  const scratchServer = options.scratch
    ? await startPrivateServer(engine, {
        dir: path.join(work, "scratch-server"),
        datadir,
        serverId: 4_000_000_001,
        role: "scratch server",
        heartbeat: context.heartbeat,
      }).catch((error: Error) => {
        if (!options.partial) throw error;
        rmSync(datadir, { recursive: true, force: true });
        throw new PartialRestoreImpossible(
          `the scratch server did not start on the partial copy: ${error.message}`,
        );
      })
    : undefined;
  if (!scratchServer) await runServerCommand(config.server.start, "start");
  const connect = <T>(use: (defaultsFile: string, sql: SqlClient) => Promise<T>): Promise<T> =>
    scratchServer ? use(scratchServer.defaultsFile, scratchServer.sql) : asRestoreUser(context, use);
  let checkedTables = 0;
  let onScratch: Record<string, unknown> | undefined;
  let began: RestoreResult["began"];
  let prefiltered: { skippedTransactions: number; replayedTransactions: number } | undefined;
  const { gtidReached, replication } = await connect(async (defaultsFile, sql) => {
    // The host's server comes up read-only: nothing but the replay writes to it, and its streamer
    // does not take it for a primary, until it is promoted (below) or an operator does so.
    if (!scratchServer) await sql.rows("SET GLOBAL read_only = ON");
    const replayStarted = Date.now();
    if (replayedBy === "applier" && engine.applierSource === "local-server") {
      await engine.adoptRestoredPosition(sql, plan.backup.binlog.gtidSet, "none");
      await options.partial?.check(sql);
      try {
        prefiltered = await replayFromLocalServer({
          ...applier,
          sql,
          ...(options.partial ? { filter: options.partial.filter } : {}),
        });
      } catch (error) {
        // A partial copy lacks the other tables' data: a transaction the filter lets through
        // that touches one (a cascade, an INSERT … SELECT logged as a statement) stops the
        // applier. The whole backup restores it.
        if (options.partial && error instanceof RewindError && error.name === ErrorNames.replay)
          throw new PartialRestoreImpossible(`the applier stopped on the partial copy: ${error.message}`);
        throw error;
      }
    } else if (replayedBy === "client") {
      await withLargePackets(sql, async () => {
        for (const [index, run] of range.runs.entries()) {
          // Each run is a new login, and the binlogs replayed so far may have changed the
          // password of the account it logs in as (a rotation's ALTER USER): a refused login makes
          // the client find the working credentials again and rewrite the option file first.
          await sql.verifyLogin();
          await replayBinlogs(engine, run, binlogDir, defaultsFile, (file, position) =>
            replayedTo(meter.doneAt(index, file, position)),
          );
        }
      });
    }
    replaySeconds += (Date.now() - replayStarted) / 1000;
    const reached = await engine.adoptRestoredPosition(sql, range.untilPosition, replayedBy);
    checkReached(range.lastTransaction?.gtid, reached);
    progress.end();
    if (scratchServer && options.onScratch)
      onScratch = await options.onScratch({ sql, defaultsFile, progress });
    else if (scratchServer) checkedTables = await checkUserTables(sql, context.heartbeat, progress);
    if (!scratchServer) began = await takeOverHost(run, sql, reached, range.lastTransaction);
    return {
      gtidReached: reached,
      replication: replicaSource
        ? await replicate(context, sql, replicaSource, options.catchUpSeconds ?? 600)
        : undefined,
    };
  }).finally(async () => {
    if (!scratchServer) return;
    await scratchServer.stop();
    rmSync(datadir, { recursive: true, force: true });
  });
  return {
    replayedBy,
    replaySeconds,
    gtidReached,
    replication,
    checkedTables,
    onScratch,
    began,
    ...(prefiltered ? { prefiltered } : {}),
  };
}

/** How the binlogs are replayed: none to replay, the client when they switch sources, else as asked. */
function replayedByFor(
  range: Awaited<ReturnType<typeof replayRange>>,
  options: Pick<RestoreOptions, "replay">,
): "none" | "applier" | "client" {
  return range.files.length === 0 ? "none" : range.runs.length > 1 ? "client" : options.replay;
}

/**
 * Step 4, on the host's server (not a scratch one): its binlog numbering carries on from what
 * is in S3; with --promote it begins a new history branching at the point reached and becomes
 * writable, otherwise it stays read-only on the plan's history.
 */
async function takeOverHost(
  run: RestoreRun,
  sql: SqlClient,
  reached: string,
  last: Awaited<ReturnType<typeof replayRange>>["lastTransaction"],
): Promise<RestoreResult["began"]> {
  const { context, options, plan, client } = run;
  const { config, engine } = context;
  await continueBinlogNumbering(context, client, sql, await engine.readServerIdentity(sql), reached);
  if (!options.promote) {
    writeHostHistory(config.stateDir, plan.history);
    return undefined;
  }
  const identity = await engine.readServerIdentity(sql);
  const record = await beginHistory(
    {
      client,
      context,
      source: engine.binlogSource(identity, config.host),
      file: await activeBinlogFile(sql),
    },
    {
      parent: plan.history,
      branch: {
        gtids: reached,
        time: last ? formatMicros(last.commitMicros ?? last.timestamp * 1e6) : plan.backup.endTime,
      },
      reason: "restore",
      identity,
      restore: { backupId: plan.backup.backupId, target: describeRestoreTarget(plan.target) },
    },
  );
  await sql.rows("SET GLOBAL read_only = OFF");
  return { id: record.id, parent: record.parent, branch: record.branch };
}

/** The tables an unpacked backup holds, named by its `db/table.<ext>` files. */
function tablesInDirectory(dir: string): string[] {
  const paths: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    for (const file of readdirSync(path.join(dir, entry.name))) paths.push(`${entry.name}/${file}`);
  }
  return tablesInStream(paths);
}

/**
 * The client replays each row-logged statement as one BINLOG statement, as large as the
 * statement's rows (a CREATE TABLE … SELECT of a big table): the server's max_allowed_packet
 * (16 MiB by default) would drop the connection. Raised to its maximum for the replay (new
 * connections read it), then put back.
 */
async function withLargePackets(sql: SqlClient, replay: () => Promise<void>): Promise<void> {
  const { bytes } = await sql.row("SELECT @@server_id AS id, @@global.max_allowed_packet AS bytes");
  await sql.rows(`SET GLOBAL max_allowed_packet = ${MAX_PACKET_BYTES}`);
  try {
    await replay();
  } finally {
    await sql.rows(`SET GLOBAL max_allowed_packet = ${Number(bytes)}`).catch(() => undefined);
  }
}

/** The largest max_allowed_packet MySQL and MariaDB take. */
const MAX_PACKET_BYTES = 1024 * 1024 * 1024;

/**
 * With the host lock held no other restore runs, so any restore's work directory or table
 * restore's scratch datadir still in workDir was left by a killed agent: removed.
 */
function sweepStaleWork(workDir: string, keep: string): void {
  for (const name of readdirSync(workDir)) {
    const entry = path.join(workDir, name);
    if (entry === keep || !/^(restore|tables)-/.test(name)) continue;
    log("info", "removing what a killed restore left", { path: entry });
    rmSync(entry, { recursive: true, force: true });
  }
}

/**
 * A drill's proof that the data reads back: CHECK TABLE on every user table of the scratch server
 * (every page of InnoDB tables is read and checked). Returns how many tables were checked.
 */
async function checkUserTables(
  sql: SqlClient,
  heartbeat: () => void,
  progress: RestoreProgress,
): Promise<number> {
  const tables = await sql.rows(
    "SELECT CONCAT('`', REPLACE(TABLE_SCHEMA, '`', '``'), '`.`', REPLACE(TABLE_NAME, '`', '``'), '`') AS name FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
  );
  progress.begin("check", "tables", tables.length);
  const problems: string[] = [];
  for (const [index, { name }] of tables.entries()) {
    heartbeat();
    progress.advance(index);
    for (const row of await sql.rows(`CHECK TABLE ${name}`)) {
      if (row.Msg_type === "error" || (row.Msg_type === "status" && row.Msg_text !== "OK")) {
        problems.push(`${name}: ${row.Msg_text}`);
      }
    }
  }
  if (problems.length > 0) {
    throw new RewindError(
      ErrorNames.verify,
      `the restored copy fails CHECK TABLE: ${problems.join("; ")}. The backup or its binlogs do not restore to sound data; take a new full backup and keep this one for investigation`,
    );
  }
  return tables.length;
}

function parseHostPort(value: string): { host: string; port: number } {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535)
    throw new RewindError(
      ErrorNames.usage,
      `--replica-of takes host:port with a port from 1 to 65535, such as 10.0.1.12:3306, not "${value}"`,
    );
  return { host: match[1]!, port };
}

/** Configures GTID replication from `source` and waits until the replica has caught up. */
async function replicate(
  context: AgentContext,
  sql: SqlClient,
  source: { host: string; port: number },
  catchUpSeconds: number,
): Promise<ReplicationState> {
  const repl = await replicationCredentials(context);
  // A replica never takes writes of its own (it would diverge, and its streamer would ship them).
  await context.engine.keepReplicaReadOnly(sql);
  await context.engine.startReplication(sql, { ...source, user: repl.username, password: repl.password });
  const deadline = Date.now() + catchUpSeconds * 1000;
  for (;;) {
    const state = await context.engine.readReplication(sql);
    if (state?.lastError) {
      // Stopped, so that what the message says is what the server does (not retrying for days).
      await context.engine.stopReplication(sql).catch(() => undefined);
      throw new RewindError(
        ErrorNames.replication,
        `replication from ${source.host}:${source.port} failed: ${state.lastError}. Replication is stopped; the restored data is intact and read-only. Fix the cause and start replication again`,
      );
    }
    if (state?.ioRunning && state.sqlRunning && state.lagSeconds === 0) return state;
    if (Date.now() > deadline) {
      throw new RewindError(
        ErrorNames.replication,
        `the replica had not caught up with ${source.host}:${source.port} after ${catchUpSeconds} s (lag ${state?.lagSeconds ?? "unknown"} s); it keeps replicating, check it with \`rewind-agent status\``,
      );
    }
    context.heartbeat();
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function describeRestoreTarget(target: RestoreTarget): string {
  return target.kind === "time" ? target.time : target.kind === "gtid" ? target.gtid : target.backupId;
}
