import { z } from "zod";
import { EngineName } from "./engine.js";

/**
 * What the host agent prints and the control plane reads (DESIGN §4): exactly one JSON line on
 * stdout, last, and the shape of `status`. The agent writes these types; the Lambdas and the
 * sandbox parse them, so a change on one side fails the other's type check or its parse.
 */
/** The Rewind-RunAgent document's step that runs the agent: its output is the agent's. */
export const AGENT_SHELL_STEP = "RunAgent";

export const ReplicationState = z.object({
  sourceHost: z.string().nullable(),
  sourcePort: z.number().int().nullable(),
  /** The account it logs in to its source with (a rotation changes its password). */
  sourceUser: z.string().nullable().default(null),
  ioRunning: z.boolean(),
  sqlRunning: z.boolean(),
  lagSeconds: z.number().nullable(),
  lastError: z.string().nullable(),
});
export type ReplicationState = z.infer<typeof ReplicationState>;

/** `rewind-agent status`: what select-source needs to choose a host. */
/** How many of the newest binlog files `status` lists by name. */
export const STATUS_NEWEST_BINLOGS = 10;

export const AgentStatus = z.object({
  engine: EngineName,
  version: z.string(),
  role: z.enum(["primary", "replica"]),
  readOnly: z.boolean(),
  serverId: z.number().int(),
  serverUuid: z.string().nullable(),
  gtidExecuted: z.string(),
  replication: ReplicationState.nullable(),
  /**
   * The server's binlogs, summarised: SSM keeps 24,000 characters of a command's output
   * (GetCommandInvocation's StandardOutputContent), and a host can hold thousands of files.
   */
  binlogs: z.object({
    count: z.number().int().nonnegative(),
    totalBytes: z.number().nonnegative(),
    first: z.string().nullable(),
    /** The newest files (at most STATUS_NEWEST_BINLOGS), oldest first; the last one is being written. */
    newest: z.array(z.object({ file: z.string(), size: z.number() })),
  }),
  datadir: z.string(),
  freeBytes: z.number().nullable(),
  binlogSource: z.string(),
  /**
   * The newest backup of this datadir taken here, which an incremental would build on
   * (host-agent/backup/lineage); absent when there is none.
   */
  lastBackup: z.object({ backupId: z.string(), incrementals: z.number().int().nonnegative() }).optional(),
});
export type AgentStatus = z.infer<typeof AgentStatus>;

export const AgentResultLine = z.discriminatedUnion("ok", [
  z.object({
    ok: z.literal(true),
    command: z.string().optional(),
    /** Lets a metric filter on the agent's output log group dimension by cluster. */
    cluster: z.string().optional(),
    /** `--version`'s is `{"version": …}`. */
    result: z.unknown().optional(),
  }),
  z.object({ ok: z.literal(false), error: z.object({ name: z.string(), message: z.string() }) }),
]);
export type AgentResultLine = z.infer<typeof AgentResultLine>;

/** The result line at the end of the agent's stdout; undefined when there is none. */
export function parseAgentResultLine(stdout: string): AgentResultLine | undefined {
  const last = stdout.trim().split("\n").at(-1);
  if (!last) return undefined;
  try {
    const parsed = AgentResultLine.safeParse(JSON.parse(last));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
