import { CLUSTER_NAME } from "../layout.js";
import { BACKUP_TYPES } from "../manifest.js";

/**
 * What the SSM documents let a state machine or a schedule send the agent, as rules both sides
 * use: the documents' `allowedPattern`s are built from these (infra/agent-document.ts), and the
 * agent's own checks (its config's bucket, `backup --type`) use the same ones, so a value one side
 * accepts the other does too.
 */

/** S3 general purpose bucket names (S3 User Guide, "Bucket naming rules"), as one pattern. */
/** SSM Agent 3.3.2746.0 is the first to pass parameters as environment variables (ENV_VAR). */
export const MINIMUM_SSM_AGENT = "3.3.2746.0";

export const S3_BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export { BACKUP_TYPES, BackupType } from "../manifest.js";

/** The commands Rewind-RunAgent runs: what the state machines, schedules and the association send. */
export const DOCUMENT_COMMANDS = [
  "status",
  "backup",
  "binlog-push",
  "list",
  "verify",
  "restore",
  "install",
  "rotate",
] as const;

/** The steps of a rotation a host takes part in (`rotate --step`; host-agent/users/rotate.ts). */
export const ROTATE_STEPS = ["set", "test", "rollback"] as const;
export type RotateStep = (typeof ROTATE_STEPS)[number];

/** A Secrets Manager ClientRequestToken: the version a rotation creates (32 to 64 characters). */
export const SECRET_VERSION_ID = /^[A-Za-z0-9-]{32,64}$/;
/** The commands Rewind-RunInstalledAgent runs (the per-minute watchdog, and status). */
export const INSTALLED_DOCUMENT_COMMANDS = ["binlog-push", "status"] as const;

const inner = (pattern: RegExp) => pattern.source.replace(/^\^|\$$/g, "");
const oneOf = (values: readonly string[]) => values.join("|");

/** Each document parameter's allowed pattern; an empty value is allowed where the parameter is optional. */
export const DOCUMENT_PATTERNS = {
  Command: `^(${oneOf(DOCUMENT_COMMANDS)})$`,
  InstalledCommand: `^(${oneOf(INSTALLED_DOCUMENT_COMMANDS)})$`,
  Type: `^(${oneOf(BACKUP_TYPES)})?$`,
  /** A restore plan written by the plan-restore Lambda. */
  Plan: `^(s3://${inner(S3_BUCKET_NAME)}/[A-Za-z0-9._/-]{1,900})?$`,
  TaskToken: "^[A-Za-z0-9+/=_.-]{0,4096}$",
  /** The cluster the request is for: a host configured for another one refuses it. */
  Cluster: `^(${inner(CLUSTER_NAME)})?$`,
  /** A rotation's step and the secret version it works with (the rotation Lambda sends them). */
  Step: `^(${oneOf(ROTATE_STEPS)})?$`,
  SecretVersion: `^(${inner(SECRET_VERSION_ID)})?$`,
} as const;
