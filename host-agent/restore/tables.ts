import { mkdirSync } from "node:fs";
import path from "node:path";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { RestorePlan } from "../../core/restore-plan.js";
import type { RestoreBinlog } from "../../core/store/plan-from-store.js";
import { type AgentContext, asRestoreUser } from "../context.js";
import { freeBytes } from "../disk.js";
import { readServerRole } from "../engines/engine.js";
import { log } from "../log.js";
import { PipelineSupervisor } from "../pipeline.js";
import type { SqlClient } from "../sql-client.js";
import { runTool, startTool } from "../tool.js";
import { findStatement, PartialRestoreImpossible, partialKeep, replicationFilter } from "./partial.js";
import type { RestoreProgress } from "./progress.js";
import { type PlanRead, restore } from "./restore.js";

const MiB = 1024 * 1024;
const IDENTIFIER = /^[A-Za-z0-9_$]{1,64}$/;
const SYSTEM_SCHEMAS = new Set(["mysql", "information_schema", "performance_schema", "sys"]);

export interface TablesOptions {
  readonly until?: string;
  readonly plan?: string;
  /** That plan, already read: it is not read again. */
  readonly planned?: PlanRead;
  /** `db.t1,db.t2` or `db.*`. */
  readonly tables: string;
  /** Suffix of the restored tables' names; default `_restored_<yyyymmddThhmmss>`. */
  readonly as?: string;
  /** Recreate dropped tables under their own names and replace existing ones (kept as `<t>_before_<ts>`). */
  readonly replace: boolean;
  readonly replay: "applier" | "client";
  /** Resolve the target on this history instead of the current one. */
  readonly history?: string;
}

export interface TableReport {
  readonly table: string;
  /** The live table that holds the restored rows now. */
  readonly restoredAs: string;
  /** The table the restored one replaced, kept under this name (`--replace` only). */
  readonly previousKeptAs: string | null;
  readonly rows: { readonly scratch: number; readonly live: number };
  readonly checksum: { readonly scratch: string; readonly live: string };
  readonly bytes: number;
  readonly seconds: number;
  /** Defined on or referring to the table in the scratch copy, and not recreated live. */
  readonly notRestored: {
    readonly triggers: string[];
    readonly views: string[];
    readonly foreignKeys: string[];
  };
}

interface Selector {
  readonly database: string;
  /** Undefined for `db.*`. */
  readonly table?: string;
}

const quote = (name: string) => `\`${name}\``;
const qualified = (database: string, table: string) => `${quote(database)}.${quote(table)}`;

function usage(message: string): RewindError {
  return new RewindError(ErrorNames.usage, message);
}

/** `db.t1,db.t2` or `db.*`: names of letters, digits, `_` and `$`, no system schema. */
export function parseTableSelectors(text: string): Selector[] {
  const selectors = text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  if (selectors.length === 0) throw usage("--tables names no table; give db.table[,db.table…] or db.*");
  return selectors.map((item) => {
    const [database, table, ...rest] = item.split(".");
    if (!database || table === undefined || rest.length > 0 || !IDENTIFIER.test(database)) {
      throw usage(`--tables: "${item}" is not db.table or db.* (names of letters, digits, _ and $)`);
    }
    if (SYSTEM_SCHEMAS.has(database.toLowerCase()))
      throw usage(`--tables: ${database} is a system schema; restore user tables only`);
    if (table === "*") return { database };
    if (!IDENTIFIER.test(table))
      throw usage(`--tables: "${item}" is not db.table or db.* (names of letters, digits, _ and $)`);
    return { database, table };
  });
}

function stamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "");
}

async function tableNames(sql: SqlClient, database: string): Promise<string[]> {
  const rows = await sql.rows(
    `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${database}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`,
  );
  return rows.map((row) => row.name!);
}

async function checksumOf(sql: SqlClient, database: string, table: string) {
  const [sum] = await sql.rows(`CHECKSUM TABLE ${qualified(database, table)}`);
  const { n } = await sql.row(`SELECT COUNT(*) AS n FROM ${qualified(database, table)}`);
  return { checksum: String(sum?.Checksum ?? ""), rows: Number(n) };
}

/** The CREATE TABLE of `table` renamed to `name`, without foreign keys (listed instead). */
function portableDefinition(create: string, name: string): { ddl: string; foreignKeys: string[] } {
  const lines = create.split("\n");
  const foreignKeys = lines
    .filter((line) => /^\s*CONSTRAINT .* FOREIGN KEY /.test(line))
    .map((line) => line.trim().replace(/,$/, ""));
  const kept = lines.filter((line) => !/^\s*CONSTRAINT .* FOREIGN KEY /.test(line));
  // The column or key before a removed constraint may now end the list with a comma.
  for (let i = 0; i < kept.length - 1; i++) {
    if (/^\)/.test(kept[i + 1]!)) kept[i] = kept[i]!.replace(/,$/, "");
  }
  const ddl = kept.join("\n").replace(/^CREATE TABLE `[^`]+`/, `CREATE TABLE ${quote(name)}`);
  return { ddl, foreignKeys };
}

/**
 * `rewind-agent restore --tables …`: restores the backup into a scratch datadir served by a
 * private socket-only server, replays to the target, then copies the chosen tables into this
 * host's live server, which must be the writable primary. Each table travels as a logical copy
 * through the primary's own session, streamed (`mariadb-dump | mariadb`, no dump file), so its
 * binlog carries it to every replica: into a temporary table, then one `CREATE TABLE … SELECT`
 * under a new name, checked by CHECKSUM TABLE against the scratch copy. A failure drops what this
 * run created; a killed agent's temporary table dies with its session. `--replace` swaps all
 * replaced tables in one atomic RENAME TABLE, keeping the old ones. The live server never stops,
 * and no other table is touched.
 */
export async function restoreTables(context: AgentContext, options: TablesOptions) {
  const { config, engine } = context;
  const selectors = parseTableSelectors(options.tables);
  const started = new Date();
  const suffix = options.as ?? `_restored_${stamp(started)}`;
  if (!/^[A-Za-z0-9_$]{1,40}$/.test(suffix))
    throw usage(`--as "${suffix}" must be 1–40 letters, digits, _ or $ (it ends the restored tables' names)`);
  const keepSuffix = `_before_${stamp(started)}`;

  // The live server first: it must be the primary, and the names the copy takes must be free.
  const live = await asRestoreUser(context, async (_file, sql) => {
    const { role } = await readServerRole(engine, sql);
    if (role !== "primary") {
      throw new RewindError(
        ErrorNames.configInvalid,
        `this host's server is ${role === "replica" ? "a replica" : "read-only"}: a table restore writes into the live primary, so that replicas get it through its binlog; run it on the primary's host`,
      );
    }
    const existing = new Map<string, Set<string>>();
    for (const database of new Set(selectors.map((s) => s.database))) {
      existing.set(database, new Set(await tableNames(sql, database)));
    }
    // What a partial copy leaves out, as the live server sizes it now: every other user table.
    const chosen = (schema: string, table: string) =>
      selectors.some((s) => s.database === schema && (!s.table || s.table === table));
    let otherTablesBytes = 0;
    for (const row of await sql.rows(
      "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS bytes FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema')",
    )) {
      if (!chosen(row.db!, row.name!)) otherTablesBytes += Number(row.bytes);
    }
    return { tables: existing, otherTablesBytes };
  });
  const finalName = (table: string) => (options.replace ? table : `${table}${suffix}`);
  /** Refuses a table whose copy would take a name that is too long or already taken live. */
  const checkName = (database: string, table: string) => {
    const name = finalName(table);
    const taken = live.tables.get(database)!;
    if (name.length > 64)
      throw usage(`${database}.${name} would be longer than 64 characters; choose a shorter --as`);
    if (!options.replace && taken.has(name))
      throw usage(`${database}.${name} already exists on the live server; choose another --as, or --replace`);
    if (options.replace && taken.has(table) && taken.has(`${table}${keepSuffix}`))
      throw usage(`${database}.${table}${keepSuffix} already exists; wait a second and run again`);
  };
  for (const { database, table } of selectors) if (table) checkName(database, table);

  mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
  // Partial when it can be: only the chosen tables' files extracted and their transactions
  // replayed, so scratch space and time follow the tables' size; otherwise, or when the partial
  // copy turns out impossible, the whole backup, saying why.
  const partialRefused =
    engine.name !== "mariadb"
      ? "a partial copy is built for MariaDB's mariabackup and applier; MySQL restores the whole backup"
      : options.replay !== "applier"
        ? "the client replay (--replay client) cannot skip other tables' transactions"
        : undefined;
  const attempt = async (partial: boolean) =>
    restore(context, {
      ...(options.until ? { until: options.until } : {}),
      ...(options.plan ? { plan: options.plan } : {}),
      ...(options.planned ? { planned: options.planned } : {}),
      datadir: path.join(config.workDir, `tables-${stamp(started)}${partial ? "" : "-whole"}`),
      moveAside: false,
      dryRun: false,
      noStart: false,
      scratch: true,
      ...(options.history ? { history: options.history } : {}),
      replay: options.replay,
      beforeFetch: async (plan) =>
        checkScratchSpace(plan, config.workDir, config.minFreeMiB, partial ? live.otherTablesBytes : 0),
      ...tablesCheck(context, selectors, partial),
      ...(partial
        ? {
            partial: {
              keep: partialKeep({ tables: selectors }),
              filter: replicationFilter({ tables: selectors }),
              check: (sql: SqlClient) => checkPartialSafe(sql, selectors),
            },
          }
        : {}),
      onScratch: async (scratch) => ({
        tables: await copyTables(context, scratch, {
          selectors,
          live: live.tables,
          finalName,
          checkName,
          keepSuffix,
          replace: options.replace,
          runStamp: stamp(started),
        }),
      }),
    });
  let result: Awaited<ReturnType<typeof restore>>;
  let partialReport: {
    used: boolean;
    reason?: string;
    extractedBytes?: number;
    skippedBytes?: number;
    notFetchedBytes?: number;
    fetchedStoredBytes?: number;
    storedBytes?: number;
    skippedTransactions?: number;
    replayedTransactions?: number;
  };
  if (partialRefused) {
    log("info", "restoring the whole backup for the tables", { why: partialRefused });
    result = await attempt(false);
    partialReport = { used: false, reason: partialRefused };
  } else {
    try {
      result = await attempt(true);
      partialReport = {
        used: true,
        extractedBytes: result.partial?.keptBytes ?? 0,
        // Dropped by the filter, and in blocks never fetched.
        skippedBytes: (result.partial?.droppedBytes ?? 0) + (result.partial?.notFetchedBytes ?? 0),
        notFetchedBytes: result.partial?.notFetchedBytes ?? 0,
        fetchedStoredBytes: result.partial?.fetchedStoredBytes ?? 0,
        storedBytes: result.partial?.storedBytes ?? 0,
        skippedTransactions: result.partial?.skippedTransactions ?? 0,
        replayedTransactions: result.partial?.replayedTransactions ?? 0,
      };
    } catch (error) {
      if (!(error instanceof PartialRestoreImpossible)) throw error;
      log("warn", "a partial copy is impossible here; restoring the whole backup for the tables", {
        why: error.message,
      });
      result = await attempt(false);
      partialReport = { used: false, reason: error.message };
    }
  }
  return {
    partial: partialReport,
    backupId: result.backupId,
    chain: result.chain,
    target: result.target,
    binlogs: result.binlogs,
    gtidReached: result.gtidReached,
    lastTransaction: result.lastTransaction,
    scratchRemoved: result.scratch?.removed ?? false,
    tables: (result.onScratch?.tables ?? []) as TableReport[],
    seconds: (Date.now() - started.getTime()) / 1000,
    phases: result.phases ?? [],
  };
}

/**
 * Every chosen table must be in the backup or be named by a statement in the binlogs up to the
 * target (it may be created there); a name found nowhere did not exist at the target. The
 * backup's table list is its manifest's, checked before the backup is downloaded; a backup whose
 * manifest records none (an older agent's) is checked once it is downloaded and unpacked, on the
 * tables its files hold, before anything is prepared or replayed. Deliberately loose (any mention
 * in a binlog counts): whether the table really exists at the target is checked again on the
 * scratch copy.
 */
function tablesCheck(context: AgentContext, selectors: readonly Selector[], partial: boolean) {
  let binlogs: readonly string[] = [];
  return {
    beforeBackup: async (
      plan: RestorePlan<RestoreBinlog>,
      binlogFiles: readonly string[],
      startPosition: number,
    ) => {
      binlogs = binlogFiles;
      // Before the backup is downloaded: binlogs that change foreign keys or triggers make a
      // partial replay unsafe (below).
      if (partial) checkPartialBinlogs(binlogFiles, startPosition);
      const known = plan.backup.tables;
      if (known && known.length > 0) {
        await checkTablesKnown(context, selectors, known, binlogFiles, {
          backupId: plan.backup.backupId,
          downloaded: "nothing was downloaded but the binlogs",
        });
        return;
      }
      log(
        "warn",
        "the backup's manifest records no table list (an older agent's backup); the chosen tables are checked against the backup's files once it is downloaded, before it is prepared",
        { backupId: plan.backup.backupId },
      );
    },
    afterExtract: async (plan: RestorePlan<RestoreBinlog>, tablesInBackup: readonly string[]) => {
      const known = plan.backup.tables;
      if (known && known.length > 0) return;
      log("info", "table list read from the backup's files", {
        backupId: plan.backup.backupId,
        tables: tablesInBackup.length,
      });
      await checkTablesKnown(context, selectors, tablesInBackup, binlogs, {
        backupId: plan.backup.backupId,
        downloaded: "the backup was downloaded to read its table list, and removed; nothing was prepared",
      });
    },
  };
}

/**
 * What a partial replay cannot do right, found on the scratch copy (the schema at the backup):
 * a foreign key between a chosen table and one that is not (a cascade from the other table is
 * not in the binlog under row logging: the replica's engine does it, and the other table's
 * transactions are filtered out; and the other table's data is not there to check against), and
 * a trigger on another table that names a chosen one (a statement-logged change to that table
 * would fire it, and the filter drops the statement). Either makes it PartialRestoreImpossible.
 */
async function checkPartialSafe(sql: SqlClient, selectors: readonly Selector[]): Promise<void> {
  const chosen = (schema: string, table: string) =>
    selectors.some((s) => s.database === schema && (!s.table || s.table === table));
  const keys = await sql.rows(
    "SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS child, UNIQUE_CONSTRAINT_SCHEMA AS parentDb, REFERENCED_TABLE_NAME AS parent FROM information_schema.REFERENTIAL_CONSTRAINTS",
  );
  const crossing = keys.filter((k) => chosen(k.db!, k.child!) !== chosen(k.parentDb!, k.parent!));
  if (crossing.length > 0) {
    throw new PartialRestoreImpossible(
      `foreign keys join a chosen table to one that is not (${crossing.map((k) => `${k.db}.${k.child} → ${k.parentDb}.${k.parent}`).join(", ")}): cascades and checks need both tables`,
    );
  }
  const triggers = await sql.rows(
    "SELECT TRIGGER_SCHEMA AS db, TRIGGER_NAME AS name, EVENT_OBJECT_TABLE AS tbl, ACTION_STATEMENT AS body FROM information_schema.TRIGGERS",
  );
  const names = selectors.map((s) => s.table ?? s.database);
  const writing = triggers.filter(
    (t) =>
      !chosen(t.db!, t.tbl!) &&
      names.some((name) => new RegExp(`\\b${name.replaceAll("$", "\\$")}\\b`, "i").test(t.body ?? "")),
  );
  if (writing.length > 0) {
    throw new PartialRestoreImpossible(
      `triggers on other tables name a chosen table (${writing.map((t) => `${t.db}.${t.name}`).join(", ")}): a change they make would be filtered out with the statement that fired it`,
    );
  }
}

/** Binlogs up to the target that add or change foreign keys or triggers: a partial replay could miss their effects. */
function checkPartialBinlogs(binlogFiles: readonly string[], startPosition: number): void {
  // From the backup's position on (the first file's earlier events are in the backup), the
  // statements only: read from the files, not decoded (row events are skipped by their size).
  const found = findStatement(binlogFiles, startPosition, /FOREIGN\s+KEY|\bREFERENCES\b|\bTRIGGER\b/i);
  if (found) {
    throw new PartialRestoreImpossible(
      `the binlogs up to the target change foreign keys or triggers ("${found}"), whose effects a replay of the chosen tables alone could miss`,
    );
  }
}

async function checkTablesKnown(
  context: AgentContext,
  selectors: readonly Selector[],
  known: readonly string[],
  binlogFiles: readonly string[],
  about: { backupId: string; downloaded: string },
): Promise<void> {
  const unknown = selectors.filter(({ database, table }) =>
    table ? !known.includes(`${database}.${table}`) : !known.some((name) => name.startsWith(`${database}.`)),
  );
  if (unknown.length === 0) return;
  const pending = new Map(
    unknown.map((selector) => [
      selector,
      new RegExp(`\\b${(selector.table ?? selector.database).replaceAll("$", "\\$")}\\b`),
    ]),
  );
  if (binlogFiles.length > 0) {
    const decoder = startTool(context.engine.tools.binlog, [...binlogFiles]);
    let tail = "";
    await new Promise<void>((resolve, reject) => {
      decoder.stdout.on("data", (chunk: Buffer) => {
        const text = tail + chunk.toString("latin1");
        for (const [selector, pattern] of pending) if (pattern.test(text)) pending.delete(selector);
        tail = text.slice(-200);
        if (pending.size === 0) {
          decoder.stop();
          resolve();
        }
      });
      decoder.exited.then(resolve, (error: Error) => (pending.size === 0 ? resolve() : reject(error)));
    });
  }
  if (pending.size === 0) return;
  const names = [...pending.keys()].map(({ database, table }) => `${database}.${table ?? "*"}`);
  throw new RewindError(
    ErrorNames.usage,
    `${names.join(", ")} did not exist at the target point in time: backup ${about.backupId} has no such table and no binlog up to the target names it; check the name and the target (${about.downloaded})`,
  );
}

/**
 * The scratch restore needs the backup's raw size and the binlogs, beside minFreeMiB; a partial
 * one less what it leaves out (`skippedBytes`: the other tables as the live server sizes them
 * now, an estimate), never less than a tenth of the backup.
 */
function checkScratchSpace(
  plan: RestorePlan<RestoreBinlog>,
  workDir: string,
  minFreeMiB: number,
  skippedBytes: number,
): void {
  // A chain's links are all unpacked before its deltas are applied.
  const rawBytes = plan.chain.reduce((sum, link) => sum + link.rawBytes, 0);
  const backupBytes = Math.max(rawBytes - skippedBytes, Math.ceil(rawBytes / 10));
  const needed = backupBytes + plan.binlogs.reduce((sum, binlog) => sum + binlog.manifest.size, 0);
  const free = freeBytes(workDir);
  if (free !== null && free - minFreeMiB * MiB < needed) {
    throw new RewindError(
      ErrorNames.insufficientSpace,
      `the scratch restore needs ${Math.ceil(needed / MiB)} MiB in ${workDir} (backup ${plan.chain.map((link) => link.backupId).join(" + ")} and ${plan.binlogs.length} binlog(s)) beside minFreeMiB ${minFreeMiB}, but ${Math.floor(free / MiB)} MiB are free; free space there or point workDir elsewhere`,
    );
  }
}

async function copyTables(
  context: AgentContext,
  scratch: { sql: SqlClient; defaultsFile: string; progress: RestoreProgress },
  run: {
    selectors: Selector[];
    live: Map<string, Set<string>>;
    finalName: (table: string) => string;
    checkName: (database: string, table: string) => void;
    keepSuffix: string;
    replace: boolean;
    runStamp: string;
  },
): Promise<TableReport[]> {
  const { engine } = context;
  // What exists at the target, in the scratch copy.
  const chosen: { database: string; table: string }[] = [];
  for (const selector of run.selectors) {
    const atTarget = await tableNames(scratch.sql, selector.database);
    if (selector.table) {
      if (!atTarget.includes(selector.table)) {
        throw new RewindError(
          ErrorNames.usage,
          `${selector.database}.${selector.table} did not exist at the target point in time (the scratch copy has ${atTarget.length > 0 ? atTarget.join(", ") : "no tables"} in ${selector.database}); check the name and the target`,
        );
      }
      chosen.push({ database: selector.database, table: selector.table });
    } else {
      if (atTarget.length === 0)
        throw new RewindError(
          ErrorNames.usage,
          `${selector.database} had no tables at the target point in time`,
        );
      for (const table of atTarget) {
        run.checkName(selector.database, table);
        chosen.push({ database: selector.database, table });
      }
    }
  }

  const reports: TableReport[] = [];
  const created: { database: string; table: string }[] = [];
  scratch.progress.begin("copy", "tables", chosen.length);
  return asRestoreUser(context, async (liveFile, liveSql) => {
    try {
      for (const [i, { database, table }] of chosen.entries()) {
        const began = Date.now();
        const exists = run.live.get(database)!.has(table);
        // A replaced table is copied beside the live one first and swapped in at the end.
        const target =
          run.replace && exists ? `${table.slice(0, 40)}_rewind_${run.runStamp}_${i}` : run.finalName(table);
        const stage = `rewind_stage_${run.runStamp}_${i}`;
        const before = await checksumOf(scratch.sql, database, table);
        const notRestored = await dependents(scratch.sql, database, table);
        // Renamed in the scratch copy (ours), so the dump's INSERTs name the stage, never a live table.
        await scratch.sql.rows(`RENAME TABLE ${qualified(database, table)} TO ${qualified(database, stage)}`);
        const create = await showCreateTable(scratch.sql, database, stage);
        const { ddl: stageDdl, foreignKeys } = portableDefinition(create, stage);
        const { ddl: targetDdl } = portableDefinition(create, target);
        created.push({ database, table: target });
        const bytes = await streamCopy(engine, scratch.defaultsFile, liveFile, {
          database,
          stage,
          prelude: [
            "SET SESSION foreign_key_checks = 0;",
            `CREATE DATABASE IF NOT EXISTS ${quote(database)};`,
            `USE ${quote(database)};`,
            `${stageDdl.replace(/^CREATE TABLE/, "CREATE TEMPORARY TABLE")};`,
          ],
          epilogue: [
            `${targetDdl} SELECT * FROM ${qualified(database, stage)};`,
            `DROP TEMPORARY TABLE ${qualified(database, stage)};`,
          ],
          heartbeat: context.heartbeat,
        });
        const after = await checksumOf(liveSql, database, target);
        if (after.checksum !== before.checksum || after.rows !== before.rows) {
          throw new RewindError(
            ErrorNames.verify,
            `${database}.${target} holds ${after.rows} rows (CHECKSUM ${after.checksum}) after the copy, the scratch copy ${before.rows} (CHECKSUM ${before.checksum}); it was dropped`,
          );
        }
        reports.push({
          table: `${database}.${table}`,
          restoredAs: `${database}.${target}`,
          previousKeptAs: null,
          rows: { scratch: before.rows, live: after.rows },
          checksum: { scratch: before.checksum, live: after.checksum },
          bytes,
          seconds: (Date.now() - began) / 1000,
          notRestored: { ...notRestored, foreignKeys },
        });
        scratch.progress.advance(reports.length);
        context.heartbeat();
      }
      // Every replaced table in one statement: either all swap in, or none.
      const swaps = chosen
        .map((chosenTable, i) => ({ ...chosenTable, report: reports[i]! }))
        .filter(({ database, table }) => run.replace && run.live.get(database)!.has(table));
      if (swaps.length > 0) {
        await liveSql.rows(
          `RENAME TABLE ${swaps
            .map(({ database, table, report }) => {
              const staged = report.restoredAs.split(".")[1]!;
              return `${qualified(database, table)} TO ${qualified(database, `${table}${run.keepSuffix}`)}, ${qualified(database, staged)} TO ${qualified(database, table)}`;
            })
            .join(", ")}`,
        );
        for (const swap of swaps) {
          const index = reports.indexOf(swap.report);
          reports[index] = {
            ...swap.report,
            restoredAs: `${swap.database}.${swap.table}`,
            previousKeptAs: `${swap.database}.${swap.table}${run.keepSuffix}`,
          };
        }
      }
      return reports;
    } catch (error) {
      // The live server keeps exactly what it held: what this run created goes.
      for (const { database, table } of created) {
        await liveSql.rows(`DROP TABLE IF EXISTS ${qualified(database, table)}`).catch((dropError: Error) =>
          log("error", "could not drop a table this restore created; drop it by hand", {
            table: `${database}.${table}`,
            error: dropError.message,
          }),
        );
      }
      throw error;
    }
  });
}

/**
 * SHOW CREATE TABLE through the client without --raw, so the statement's newlines come escaped
 * on one line, then unescaped.
 */
async function showCreateTable(sql: SqlClient, database: string, table: string): Promise<string> {
  const row = await sql.row(`SHOW CREATE TABLE ${qualified(database, table)}`);
  return row["Create Table"] ?? "";
}

/** Triggers on the table, views that name it, and foreign keys that point at it: reported, not recreated. */
async function dependents(sql: SqlClient, database: string, table: string) {
  const triggers = await sql.rows(
    `SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = '${database}' AND EVENT_OBJECT_TABLE = '${table}'`,
  );
  const views = await sql.rows(
    `SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS name FROM information_schema.VIEWS WHERE VIEW_DEFINITION LIKE '%\`${database}\`.\`${table}\`%'`,
  );
  const referencing = await sql.rows(
    `SELECT CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME, ' ', CONSTRAINT_NAME) AS name FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = '${database}' AND REFERENCED_TABLE_NAME = '${table}'`,
  );
  return {
    triggers: triggers.map((row) => row.name!),
    views: [...views.map((row) => row.name!), ...referencing.map((row) => `foreign key from ${row.name}`)],
  };
}

/**
 * One live session, fed on stdin: the prelude (a temporary stage table), the scratch server's
 * rows of the stage as INSERTs straight from the dump tool (never a file), then the epilogue
 * (`CREATE TABLE … SELECT` from the stage). The client stops at the first error.
 */
async function streamCopy(
  engine: AgentContext["engine"],
  scratchFile: string,
  liveFile: string,
  copy: {
    database: string;
    stage: string;
    prelude: string[];
    epilogue: string[];
    heartbeat: () => void;
  },
): Promise<number> {
  const client = startTool(engine.tools.client, [`--defaults-extra-file=${liveFile}`, "--batch"]);
  const dump = startTool(engine.tools.dump, [
    `--defaults-extra-file=${scratchFile}`,
    "--single-transaction",
    "--no-create-info",
    "--skip-triggers",
    "--skip-add-locks",
    "--skip-disable-keys",
    "--skip-comments",
    "--hex-blob",
    copy.database,
    copy.stage,
  ]);
  let bytes = 0;
  client.stdin.write(`${copy.prelude.join("\n")}\n`);
  dump.stdout.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    copy.heartbeat();
  });
  dump.stdout.pipe(client.stdin, { end: false });
  const supervisor = new PipelineSupervisor(["dump", "client"], () => {
    dump.stop();
    client.stop();
  });
  let dumped = false;
  await supervisor.run([
    [
      "dump",
      dump.exited.then(() => {
        dumped = true;
        client.stdin.end(`\n${copy.epilogue.join("\n")}\n`);
      }),
    ],
    [
      "client",
      client.exited.then(() => {
        if (!dumped) throw new Error(`${engine.tools.client} ended before the copy was complete`);
      }),
    ],
  ]);
  const cause = supervisor.cause();
  if (cause) {
    throw new RewindError(
      ErrorNames.sql,
      `copying ${copy.database}.${copy.stage} into the live server failed: ${cause.error.message}`,
      supervisor
        .failures()
        .map((failure) => `${failure.stage}: ${failure.error.message}`)
        .join("\n"),
    );
  }
  return bytes;
}
