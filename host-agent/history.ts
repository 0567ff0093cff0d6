import { readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { binlogSequence, gtidsAfter } from "../core/binlog/manifest.js";
import { gtidModel } from "../core/gtid/index.js";
import {
  currentHistory,
  HISTORY_FORMAT_VERSION,
  HistoryRecord,
  type HistoryTree,
  HistoryWriter,
  historyOfGtids,
  historyOfRecord,
  INITIAL_HISTORY,
  lostTransactions,
  makeHistoryId,
  recordsOnHistory,
} from "../core/history.js";
import { historyKey, historyWriterKey } from "../core/layout.js";
import { listChunks } from "../core/store/binlog-chunks.js";
import { readShippedTail } from "../core/store/binlog-index.js";
import { readSources } from "../core/store/catalog.js";
import { readHistoryTree } from "../core/store/histories.js";
import type { AgentContext } from "./context.js";
import type { ServerIdentity } from "./engines/engine.js";
import { log } from "./log.js";
import { putJson } from "./s3/put-json.js";
import type { SqlClient } from "./sql-client.js";

/**
 * The host's side of histories (core/history): which history its server is on, kept in
 * `stateDir/history.json` by whatever put the server there (a restore, a promotion, a failover
 * its streamer noticed), and the records in S3 of a history it begins or joins as a writer.
 */
const MARKER = "history.json";

export function readHostHistory(stateDir: string): string | undefined {
  try {
    const { history } = JSON.parse(readFileSync(path.join(stateDir, MARKER), "utf8")) as { history?: string };
    return typeof history === "string" ? history : undefined;
  } catch {
    return undefined;
  }
}

export function writeHostHistory(stateDir: string, history: string): void {
  const file = path.join(stateDir, MARKER);
  writeFileSync(`${file}.tmp`, JSON.stringify({ history, since: new Date().toISOString() }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/**
 * A restored server starts a fresh binlog (mariadb-bin.000001): if its binlog source already
 * shipped files with that number or later (a host restored in place, a host that was primary
 * before), its binlog goes on after the newest of them, keeping the restored GTID position, so
 * that no file name means two different files in S3.
 */
export async function continueBinlogNumbering(
  context: AgentContext,
  client: S3Client,
  sql: SqlClient,
  identity: ServerIdentity,
  gtids: string,
): Promise<string | undefined> {
  const { config, engine, location } = context;
  const source = engine.binlogSource(identity, config.host);
  const active = await activeBinlogFile(sql);
  const { lastShipped } = await readShippedTail(client, config.bucket, location, source);
  const chunked = await listChunks(client, config.bucket, location, source, lastShipped?.file);
  const newest = Math.max(
    lastShipped ? binlogSequence(lastShipped.file) : 0,
    ...chunked.map((listing) => binlogSequence(listing.file)),
  );
  if (binlogSequence(active) > newest) return undefined;
  await engine.renumberBinlogs(sql, newest + 1, gtids);
  const renumbered = await activeBinlogFile(sql);
  log("info", "the restored server's binlog goes on after what its source already shipped", {
    source,
    shippedUpTo: newest,
    file: renumbered,
  });
  return renumbered;
}

/** The binlog file the server writes now: where a history it begins or joins starts in its source. */
export async function activeBinlogFile(sql: SqlClient): Promise<string> {
  const row = (await sql.rows("SHOW MASTER STATUS"))[0];
  const file = row?.File;
  if (!file) throw new Error("SHOW MASTER STATUS names no binlog file; is log_bin on?");
  return file;
}

async function binlogPosition(sql: SqlClient): Promise<string> {
  // A row with a second column: an empty position alone reads back as no row.
  return (await sql.row("SELECT @@server_id AS id, @@gtid_binlog_pos AS binlog")).binlog ?? "";
}

interface Writer {
  readonly client: S3Client;
  readonly context: AgentContext;
  readonly source: string;
  readonly file: string;
}

async function writeWriter({ client, context, source, file }: Writer, history: string): Promise<void> {
  const { config, location } = context;
  await putJson(
    client,
    config.bucket,
    historyWriterKey(location, history, source),
    HistoryWriter.parse({
      formatVersion: HISTORY_FORMAT_VERSION,
      cluster: config.cluster,
      history,
      source,
      host: config.host,
      file,
      since: new Date().toISOString(),
    }),
  );
}

/**
 * Begins a history on this host: its record, then this source as its writer from `file` on, then
 * the host's marker. Written before the server takes its first write on it, so the record is in
 * S3 before anything on the new history ships.
 */
export async function beginHistory(
  writer: Writer,
  fields: {
    parent: string;
    branch: { gtids: string; time: string | null };
    reason: HistoryRecord["reason"];
    identity: ServerIdentity;
    restore?: HistoryRecord["restore"];
    lost?: string;
  },
): Promise<HistoryRecord> {
  const { config, engine, location } = writer.context;
  const startedAt = new Date();
  const record = HistoryRecord.parse({
    formatVersion: HISTORY_FORMAT_VERSION,
    cluster: config.cluster,
    engine: engine.name,
    id: makeHistoryId(startedAt, config.host),
    parent: fields.parent,
    branch: fields.branch,
    startedAt: startedAt.toISOString(),
    reason: fields.reason,
    host: config.host,
    source: writer.source,
    serverId: fields.identity.serverId,
    serverUuid: fields.identity.serverUuid,
    ...(fields.restore ? { restore: fields.restore } : {}),
    ...(fields.lost ? { lost: fields.lost } : {}),
  });
  await putJson(writer.client, config.bucket, historyKey(location, record.id), record);
  await writeWriter(writer, record.id);
  writeHostHistory(config.stateDir, record.id);
  log("info", "began a new history", {
    history: record.id,
    parent: record.parent,
    branch: record.branch.gtids,
    reason: record.reason,
  });
  return record;
}

export interface ClaimedHistory {
  readonly history: string;
  /** Another history is the current one: two hosts act as primary. */
  readonly conflict?: string;
  /** A history this host began (a failover that lost shipped transactions). */
  readonly began?: HistoryRecord;
}

/**
 * Before a host ships as the primary: the history it writes. A host on the current history joins
 * it as a writer when it holds everything the history shipped (a failover without loss); when it
 * lacks transactions the old primary shipped, it begins a new history branching at what it
 * received (a lossy failover, or a restored server made writable by hand). A host on another
 * history (an old primary still writing after a roll-back) keeps writing that one, reported as a
 * conflict. In a cluster that never branched, nothing is written.
 */
export async function claimHistory(
  context: AgentContext,
  client: S3Client,
  sql: SqlClient,
  identity: ServerIdentity,
  source: string,
): Promise<ClaimedHistory> {
  const { config, location } = context;
  const tree: HistoryTree = await readHistoryTree(client, config.bucket, location);
  const file = await activeBinlogFile(sql);
  const writer = { client, context, source, file };
  const current = currentHistory(tree);
  const marked = readHostHistory(config.stateDir);
  // Already a writer of the history its marker names (a restart, a rotation): nothing to read.
  if (
    marked !== undefined &&
    marked !== INITIAL_HISTORY &&
    historyOfRecord(tree, { source, file }) === marked
  ) {
    return marked === current ? { history: marked } : conflictOf(marked, current, source);
  }
  const sources = await readSources(client, config.bucket, location);
  const records = [...sources.values()].flat();
  const shippedHere = sources.get(source)?.at(-1);
  const mine = marked ?? (shippedHere ? historyOfRecord(tree, shippedHere) : undefined);
  if (mine !== undefined && mine !== current) {
    if (mine !== INITIAL_HISTORY && historyOfRecord(tree, { source, file }) !== mine)
      await writeWriter(writer, mine);
    return conflictOf(mine, current, source);
  }
  const model = gtidModel(context.engine.name);
  const onCurrent = recordsOnHistory(tree, current, records).filter((record) => record.source !== source);
  const shipped = onCurrent.reduce((set, record) => set.union(gtidsAfter(record)), model.empty());
  const row = await sql.row("SELECT @@server_id AS id, @@gtid_slave_pos AS replicated");
  const { lost, branch } = lostTransactions(shipped, {
    executed: context.engine.name === "mariadb" ? await binlogPosition(sql) : identity.gtidExecuted,
    replicated: context.engine.name === "mariadb" ? (row.replicated ?? "") : "",
    serverId: identity.serverId,
    serverUuid: identity.serverUuid,
  });
  if (lost.isEmpty()) {
    if (tree.histories.length > 0 || mine !== undefined) {
      await writeWriter(writer, current);
      writeHostHistory(config.stateDir, current);
    }
    return { history: current };
  }
  const began = await beginHistory(writer, {
    parent: current,
    branch: { gtids: branch.toString(), time: null },
    reason: "failover",
    identity,
    lost: lost.toString(),
  });
  log(
    "warn",
    "this host became the primary without transactions the old primary had shipped: they stay on the old history, and this host writes a new one",
    {
      history: began.id,
      lost: lost.toString(),
    },
  );
  return { history: began.id, began };
}

/** A primary on a history that is not the current one: kept apart, and reported. */
export function conflictOf(mine: string, current: string, source: string): ClaimedHistory {
  const conflict = `this host writes history ${mine}, but the cluster's current history is ${current}: two hosts act as primary. Retire this one, or restore it as a replica of the current primary`;
  log("error", conflict, { source });
  return { history: mine, conflict };
}

/**
 * The history a backup of this host's server is on: the host's marker, else (once the cluster has
 * branched) the history that holds the server's GTIDs; none in a cluster that never branched.
 */
export async function historyForBackup(
  context: AgentContext,
  client: S3Client,
  gtidSet: string,
): Promise<string | undefined> {
  const marked = readHostHistory(context.config.stateDir);
  if (marked) return marked;
  const tree = await readHistoryTree(client, context.config.bucket, context.location);
  if (tree.histories.length === 0) return undefined;
  const records = [...(await readSources(client, context.config.bucket, context.location)).values()].flat();
  return historyOfGtids(tree, records, gtidModel(context.engine.name).parseSet(gtidSet));
}
