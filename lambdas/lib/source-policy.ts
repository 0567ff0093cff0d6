import type { AgentStatus } from "../../core/agent-output.js";
import { NoEligibleSource } from "./errors.js";
import type { ClusterSettings } from "./settings.js";

/** What one host's agent said to `status` (host-agent/commands/status.ts), or why it said nothing. */
export interface HostStatus {
  readonly instanceId: string;
  readonly status?: Pick<AgentStatus, "role" | "readOnly" | "binlogSource" | "replication" | "lastBackup">;
  readonly problem?: string;
}

export interface SourceChoice {
  readonly instanceId: string;
  readonly role: "primary" | "replica";
  readonly binlogSource: string;
  readonly reason: string;
}

/** Why a replica may not be backed up, or undefined when it is healthy and close enough. */
function replicaProblem(host: HostStatus, maxLag: number): string | undefined {
  const replication = host.status?.replication;
  if (!replication) return "no replication status";
  if (replication.lastError) return `replication error: ${replication.lastError}`;
  if (!replication.ioRunning || !replication.sqlRunning) return "replication is stopped";
  if (replication.lagSeconds === null) return "lag unknown";
  if (replication.lagSeconds > maxLag) return `${replication.lagSeconds}s behind (bound ${maxLag}s)`;
  return undefined;
}

/**
 * The source policy (DESIGN §5): `primary`, `replica` (a healthy replica within the lag bound, or
 * fail), `prefer-replica` (such a replica, else the primary). Among replicas the least lagged wins.
 */
export function chooseSource(
  hosts: readonly HostStatus[],
  cluster: ClusterSettings,
  hostTag = "rewind:cluster",
  type: "full" | "incremental" = "full",
): SourceChoice {
  const answered = hosts.filter((host) => host.status);
  const primaries = answered.filter((host) => host.status!.role === "primary" && !host.status!.readOnly);
  const replicas = answered.filter((host) => host.status!.role === "replica");
  const healthy = replicas
    .filter((host) => replicaProblem(host, cluster.maxReplicaLagSeconds) === undefined)
    .sort((a, b) => a.status!.replication!.lagSeconds! - b.status!.replication!.lagSeconds!);
  const pick = (host: HostStatus, reason: string): SourceChoice => ({
    instanceId: host.instanceId,
    role: host.status!.role,
    binlogSource: host.status!.binlogSource,
    reason,
  });
  // An incremental continues the chain of the host that holds its base, when the policy lets
  // that host be backed up now: any other host would have to take a full backup instead.
  const continuing = [
    ...(cluster.sourcePolicy !== "primary" ? healthy : []),
    ...(cluster.sourcePolicy !== "replica" && primaries.length === 1 ? primaries : []),
  ].find((host) => host.status!.lastBackup);
  if (type === "incremental" && continuing) {
    return pick(
      continuing,
      `${continuing.status!.role} holding the chain of ${continuing.status!.lastBackup!.backupId} (policy ${cluster.sourcePolicy}, incremental)`,
    );
  }
  if (cluster.sourcePolicy !== "primary" && healthy[0]) {
    const lag = healthy[0].status!.replication!.lagSeconds;
    return pick(healthy[0], `healthy replica ${lag}s behind (policy ${cluster.sourcePolicy})`);
  }
  if (cluster.sourcePolicy !== "replica" && primaries.length === 1) {
    return pick(
      primaries[0]!,
      `primary (policy ${cluster.sourcePolicy}${cluster.sourcePolicy === "prefer-replica" ? ", no healthy replica" : ""})`,
    );
  }
  const seen = hosts
    .map((host) => {
      const what = host.problem
        ? host.problem
        : host.status!.role === "replica"
          ? `replica, ${replicaProblem(host, cluster.maxReplicaLagSeconds) ?? "healthy"}`
          : host.status!.readOnly
            ? "primary but read_only"
            : "primary";
      return `${host.instanceId}: ${what}`;
    })
    .join("; ");
  const why =
    hosts.length === 0
      ? `no managed instance is tagged ${hostTag}=${cluster.name} and online in SSM; tag the database hosts and check the SSM agent`
      : primaries.length > 1
        ? `more than one writable primary answered (${seen}); fix the topology before backing up`
        : `policy ${cluster.sourcePolicy} found no eligible host (${seen})`;
  throw new NoEligibleSource(`cluster ${cluster.name}: ${why}`);
}
