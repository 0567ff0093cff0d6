import type { BackupInput } from "./inputs.js";
import type { ClusterSettings } from "./settings.js";
import { chooseSource, type HostStatus, type SourceChoice } from "./source-policy.js";

/** How select-source finds hosts and asks them; SSM in AWS, the sandbox's runner locally. */
export interface HostDirectory {
  instances(cluster: string): Promise<string[]>;
  status(instanceIds: readonly string[]): Promise<HostStatus[]>;
  /** The tag hosts carry (`rewind:cluster`), for the error when none answers. */
  readonly hostTag?: string;
}

export interface SelectedSource extends BackupInput {
  readonly source: SourceChoice;
  /** Every host asked and what it answered, for the execution history. */
  readonly hosts: { instanceId: string; role?: string; lagSeconds?: number | null; problem?: string }[];
}

export async function selectSource(
  directory: HostDirectory,
  cluster: ClusterSettings,
  input: BackupInput,
): Promise<SelectedSource> {
  const hosts = await directory.status(await directory.instances(cluster.name));
  const source = chooseSource(hosts, cluster, directory.hostTag, input.type);
  return {
    ...input,
    source,
    hosts: hosts.map((host) => ({
      instanceId: host.instanceId,
      ...(host.status
        ? { role: host.status.role, lagSeconds: host.status.replication?.lagSeconds ?? null }
        : { problem: host.problem }),
    })),
  };
}
