import { ssmClient } from "../lib/clients.js";
import { askHostStatus, clusterInstances } from "../lib/host-status.js";
import { BackupInput, parseInput } from "../lib/inputs.js";
import { logger } from "../lib/observability.js";
import { selectSource } from "../lib/select-source.js";
import { clusterSettings, readSettings } from "../lib/settings.js";

const settings = readSettings();

/** Backup step 1: ask every host of the cluster for its status and pick the source by policy. */
export async function handler(event: unknown) {
  const input = parseInput(BackupInput, event, "Backup");
  const cluster = await clusterSettings(settings, input.cluster);
  const chosen = await selectSource(
    {
      instances: (name) => clusterInstances(ssmClient(), name, settings.hostTag),
      hostTag: settings.hostTag,
      status: (ids) =>
        askHostStatus(ssmClient(), ids, { documentName: settings.documentName, timeoutSeconds: 90 }),
    },
    cluster,
    input,
  );
  logger.info("backup source chosen", { cluster: input.cluster, source: chosen.source, hosts: chosen.hosts });
  return chosen;
}
