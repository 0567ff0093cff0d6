import { secretsClient, ssmClient } from "../lib/clients.js";
import { askHostStatus, clusterInstances, runOnHosts } from "../lib/host-status.js";
import { logger } from "../lib/observability.js";
import { type RotationEvent, rotateAccounts } from "../lib/rotate-accounts.js";
import { readSettings } from "../lib/settings.js";

const settings = readSettings();
const ask = { documentName: settings.documentName, timeoutSeconds: 120 };

/** Secrets Manager's rotation function for every cluster's accounts secret. */
export async function handler(event: RotationEvent) {
  logger.info("rotation step", { step: event.Step, secret: event.SecretId, token: event.ClientRequestToken });
  await rotateAccounts(
    secretsClient(),
    {
      hostTag: settings.hostTag,
      roles: async (cluster) => {
        const statuses = await askHostStatus(
          ssmClient(),
          await clusterInstances(ssmClient(), cluster, settings.hostTag),
          ask,
        );
        return statuses.map((host) => ({
          instanceId: host.instanceId,
          ...(host.status ? { role: host.status.role, readOnly: host.status.readOnly } : {}),
          ...(host.problem ? { problem: host.problem } : {}),
        }));
      },
      run: (cluster, instanceIds, step, version) =>
        runOnHosts(
          ssmClient(),
          instanceIds,
          { Command: ["rotate"], Step: [step], SecretVersion: [version], Cluster: [cluster] },
          { ...ask, comment: `Rewind rotation: ${step}` },
        ),
    },
    event,
  );
}
