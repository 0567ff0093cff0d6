/**
 * Errors whose `name` Step Functions can match in Retry/Catch, and whose message says what
 * happened, what it means for the data, and what to do.
 */
export class RewindError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    /** Extra detail for the operator, such as the tail of a tool's stderr. */
    readonly detail?: string,
    /** What failed underneath (an S3 or SDK error), kept for the log. */
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One kind of failure: the name Step Functions matches, whether trying again can help, the agent's exit code, and what an operator does. */
export interface ErrorKind {
  readonly name: string;
  /** Trying again later can succeed without anyone changing anything. */
  readonly retryable: boolean;
  /** The agent's exit code: 2 for a command line to fix, 1 for everything else. */
  readonly exitCode: 1 | 2;
  readonly hint: string;
}

const kind = (name: string, retryable: boolean, hint: string, exitCode: 1 | 2 = 1): ErrorKind => ({
  name,
  retryable,
  exitCode,
  hint,
});

/**
 * The one error table: every error the agent and the Lambdas raise by name, and every name the
 * state machines' Retry and Catch rules match (test/unit/error-table.test.ts holds them to it).
 */
export const ERRORS = {
  configInvalid: kind(
    "ConfigInvalid",
    false,
    "fix the agent config, the host's tag or the stack config as the message says",
  ),
  usage: kind("UsageError", false, "fix the command line or the request as the message says", 2),
  busy: kind(
    "AgentBusy",
    true,
    "another backup or restore holds the host; the state machine waits and tries again",
  ),
  insufficientSpace: kind(
    "InsufficientSpace",
    false,
    "free disk space where the message says, or point workDir elsewhere",
  ),
  credentials: kind(
    "CredentialsRejected",
    false,
    "check the database user and the password its secret holds",
  ),
  toolVersion: kind("ToolVersionMismatch", false, "install the backup tool version the server needs"),
  backupTool: kind(
    "BackupToolFailed",
    false,
    "read the tool's output in the detail; the backup left no manifest",
  ),
  compression: kind("CompressionFailed", false, "check zstd on the host; the backup left no manifest"),
  encryption: kind("EncryptionFailed", true, "check the host's KMS access and the key; nothing was stored"),
  upload: kind(
    "UploadFailed",
    true,
    "S3 refused or was unreachable; nothing incomplete looks complete, and it is tried again",
  ),
  /** The per-source binlog index could not be written; shipped files stay usable through their manifests. */
  binlogIndex: kind(
    "BinlogIndexFailed",
    true,
    "S3 refused the index write; the next shipment indexes the files",
  ),
  verify: kind(
    "VerifyFailed",
    false,
    "the stored data differs from its manifest: do not use it; take a new backup",
  ),
  noIncrementalBase: kind(
    "NoIncrementalBase",
    false,
    'take a full backup of this host first, or set backup.incremental.whenNoBase to "full"',
  ),
  notFound: kind("BackupNotFound", false, "`rewind-agent list` shows the complete backups"),
  targetNotEmpty: kind("TargetNotEmpty", false, "restore into an empty directory, or pass --move-aside"),
  planRefused: kind(
    "RestorePlanRefused",
    false,
    "choose a target the restorable window covers (`rewind-agent list`)",
  ),
  replay: kind(
    "BinlogReplayFailed",
    false,
    "the restored server did not reach the target; do not use it before checking why",
  ),
  serverControl: kind(
    "ServerControlFailed",
    false,
    "check the server's start and stop commands in the agent config",
  ),
  replication: kind(
    "ReplicationFailed",
    false,
    "fix the replication source or user, then start replication again",
  ),
  interrupted: kind("AgentInterrupted", true, "the agent was stopped; run it again"),
  gtidInvalid: kind("GtidInvalid", false, "give a GTID of the cluster's engine"),
  sql: kind("SqlFailed", false, "the server refused a statement; the message names it"),
  prepare: kind("PrepareFailed", false, "the backup could not be prepared; the detail has the tool's output"),
  xbstreamInvalid: kind(
    "XbstreamError",
    false,
    "the backup stream's framing or a chunk checksum is damaged; the message gives the offset",
  ),
  binlogInvalid: kind(
    "BinlogInvalid",
    false,
    "the binary log is damaged or not usable for GTID restores; the message says which",
  ),
  crashed: kind("AgentCrashed", false, "an unforeseen fault; the detail has the stack"),
  unexpected: kind(
    "AgentError",
    false,
    "a fault without a name of its own; the message and detail say what failed",
  ),
  // The Lambdas'.
  inputInvalid: kind("InputInvalid", false, "fix the execution input's field the message names"),
  unknownCluster: kind("UnknownCluster", false, "name a cluster of the stack's config"),
  noEligibleSource: kind(
    "NoEligibleSource",
    true,
    "no host may be backed up by the cluster's source policy now; the message says why",
  ),
  retentionFailed: kind("RetentionFailed", true, "S3 refused a deletion; the next daily run tries again"),
  rotationFailed: kind(
    "RotationFailed",
    true,
    "the accounts' passwords were put back to the current ones; fix what the message names, then rotate the secret again",
  ),
} as const satisfies Record<string, ErrorKind>;

/** The names alone, by key (`ErrorNames.busy` is "AgentBusy"). */
export const ErrorNames = Object.fromEntries(
  Object.entries(ERRORS).map(([key, value]) => [key, value.name]),
) as { readonly [K in keyof typeof ERRORS]: (typeof ERRORS)[K]["name"] };

/** The table's entry for an error name; undefined for a name Rewind does not raise. */
export function errorKind(name: string): ErrorKind | undefined {
  return Object.values(ERRORS).find((each) => each.name === name);
}

export function configError(message: string): RewindError {
  return new RewindError(ErrorNames.configInvalid, message);
}
