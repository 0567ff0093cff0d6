import { chunkObjectName } from "./binlog/chunk.js";

/**
 * The S3 key layout (DESIGN §3). Every key Rewind writes or reads is built here, so the agent,
 * the Lambdas and the sandbox agree on where things are.
 */
/**
 * Where a cluster's objects are: every key starts with the cluster's name, the prefix the hosts'
 * IAM policy is scoped to (`<cluster>/*`).
 */
export interface ClusterLocation {
  readonly cluster: string;
}

function root({ cluster }: ClusterLocation): string {
  return cluster;
}

/** Everything of one cluster, `<cluster>/`: the prefix its hosts' policy lets them list. */
export function clusterPrefix(location: ClusterLocation): string {
  return `${root(location)}/`;
}

export function backupsPrefix(location: ClusterLocation): string {
  return `${root(location)}/backups/`;
}

export function backupPrefix(location: ClusterLocation, backupId: string): string {
  return `${backupsPrefix(location)}${backupId}/`;
}

/** Segment objects of the stored stream: `stream.000.enc`, `stream.001.enc`, … */
export function segmentKey(location: ClusterLocation, backupId: string, index: number): string {
  return `${backupPrefix(location, backupId)}stream.${String(index).padStart(3, "0")}.enc`;
}

/** Written last: its presence means the backup is complete. */
export function backupManifestKey(location: ClusterLocation, backupId: string): string {
  return `${backupPrefix(location, backupId)}manifest.json`;
}

/** Where every source's binlogs live: `<cluster>/binlogs/<source>/…`. */
export function allBinlogsPrefix(location: ClusterLocation): string {
  return `${root(location)}/binlogs/`;
}

export function binlogsPrefix(location: ClusterLocation, source: string): string {
  return `${allBinlogsPrefix(location)}${source}/`;
}

/** The per-source index of shipped binlogs, in chunks of consecutive file numbers (core/store/binlog-index). */
export function binlogIndexPrefix(location: ClusterLocation, source: string): string {
  return `${binlogsPrefix(location, source)}index/`;
}

export function binlogIndexChunkKey(location: ClusterLocation, source: string, chunk: number): string {
  return `${binlogIndexPrefix(location, source)}${String(chunk).padStart(6, "0")}.json`;
}

export function binlogObjectKey(location: ClusterLocation, source: string, file: string): string {
  return `${binlogsPrefix(location, source)}${file}.zst.enc`;
}

export function binlogManifestKey(location: ClusterLocation, source: string, file: string): string {
  return `${binlogsPrefix(location, source)}${file}.json`;
}

/** Where `binlog-stream` ships the chunks of a file the server is still writing (core/binlog/chunk). */
export function binlogChunksPrefix(location: ClusterLocation, source: string, file?: string): string {
  return `${binlogsPrefix(location, source)}chunks/${file === undefined ? "" : `${file}/`}`;
}

/** One chunk object of a file: its byte range names it (core/binlog/chunk). */
export function binlogChunkKey(
  location: ClusterLocation,
  source: string,
  file: string,
  start: number,
  end: number,
): string {
  return `${binlogChunksPrefix(location, source, file)}${chunkObjectName(start, end)}`;
}

/**
 * The cluster's histories (core/history.ts): `histories/<id>/history.json`, written by the agent
 * that starts one, and `histories/<id>/writers/<source>.json` for each source that writes it.
 */
export function historiesPrefix(location: ClusterLocation): string {
  return `${root(location)}/histories/`;
}

export function historyKey(location: ClusterLocation, id: string): string {
  return `${historiesPrefix(location)}${id}/history.json`;
}

export function historyWriterKey(location: ClusterLocation, id: string, source: string): string {
  return `${historiesPrefix(location)}${id}/writers/${source}.json`;
}

export function restoresPrefix(location: ClusterLocation): string {
  return `${root(location)}/restores/`;
}

export function restorePrefix(location: ClusterLocation, restoreId: string): string {
  return `${restoresPrefix(location)}${restoreId}/`;
}

/** The plan plan-restore writes and the agent executes. */
export function restorePlanKey(location: ClusterLocation, restoreId: string): string {
  return `${restorePrefix(location, restoreId)}plan.json`;
}

/** Where a running restore says how far it is (core/contracts/restore-progress.ts). */
export function restoreProgressKey(location: ClusterLocation, restoreId: string): string {
  return `${restorePrefix(location, restoreId)}progress.json`;
}

/** The outcome the agent writes beside the plan of a restore, success or failure. */
export function restoreReportKey(location: ClusterLocation, restoreId: string): string {
  return `${restorePrefix(location, restoreId)}report.json`;
}

/** Each host's latest doctor record (the install association's), by the config's `host`. */
export function hostChecksPrefix(location: ClusterLocation): string {
  return `${root(location)}/hosts/`;
}

export function hostChecksKey(location: ClusterLocation, host: string): string {
  return `${hostChecksPrefix(location)}${host}/doctor.json`;
}

/** What the doctor writes (and tries, and must fail, to delete) to check the host's S3 access. */
export function hostProbeKey(location: ClusterLocation, host: string): string {
  return `${hostChecksPrefix(location)}${host}/probe.json`;
}

/**
 * Cluster names appear in S3 keys, secret names and resource names. The tightest of those is the
 * binlog schedule, `rewind-binlogs-<cluster>`, which EventBridge Scheduler limits to 64 characters.
 */
export const BINLOG_SCHEDULE_PREFIX = "rewind-binlogs-";
export const MAX_CLUSTER_NAME_LENGTH = 64 - BINLOG_SCHEDULE_PREFIX.length;
export const CLUSTER_NAME = new RegExp(`^[a-z0-9][a-z0-9-]{0,${MAX_CLUSTER_NAME_LENGTH - 1}}$`);

export function validateClusterName(cluster: string): string | undefined {
  if (cluster.length > MAX_CLUSTER_NAME_LENGTH) {
    return `cluster name "${cluster}" has ${cluster.length} characters; at most ${MAX_CLUSTER_NAME_LENGTH} fit, since its binlog schedule ${BINLOG_SCHEDULE_PREFIX}<cluster> may have at most 64 (EventBridge Scheduler). Choose a shorter name`;
  }
  return CLUSTER_NAME.test(cluster)
    ? undefined
    : `cluster name "${cluster}" must be lower-case letters, digits and hyphens, starting with a letter or digit`;
}
