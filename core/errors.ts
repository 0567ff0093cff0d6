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

export const ErrorNames = {
  configInvalid: "ConfigInvalid",
  usage: "UsageError",
  busy: "AgentBusy",
  insufficientSpace: "InsufficientSpace",
  credentials: "CredentialsRejected",
  toolVersion: "ToolVersionMismatch",
  backupTool: "BackupToolFailed",
  compression: "CompressionFailed",
  encryption: "EncryptionFailed",
  upload: "UploadFailed",
  /** The per-source binlog index could not be written; shipped files stay usable through their manifests. */
  binlogIndex: "BinlogIndexFailed",
  verify: "VerifyFailed",
  notFound: "BackupNotFound",
  targetNotEmpty: "TargetNotEmpty",
  planRefused: "RestorePlanRefused",
  replay: "BinlogReplayFailed",
  serverControl: "ServerControlFailed",
  replication: "ReplicationFailed",
  interrupted: "AgentInterrupted",
  gtidInvalid: "GtidInvalid",
  sql: "SqlFailed",
  prepare: "PrepareFailed",
  binlogInvalid: "BinlogInvalid",
} as const;

export function configError(message: string): RewindError {
  return new RewindError(ErrorNames.configInvalid, message);
}
