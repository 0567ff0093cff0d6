import { z } from "zod";
import { EngineName } from "../../core/engine.js";
import { UnknownCluster } from "./errors.js";

/**
 * What the stack tells every Lambda through its environment (set in infra/control-plane-functions.ts).
 * Read once per cold start; a malformed environment is a deployment bug, so it throws plainly.
 */
const ClusterSettings = z.object({
  name: z.string(),
  engine: EngineName,
  sourcePolicy: z.enum(["primary", "replica", "prefer-replica"]),
  maxReplicaLagSeconds: z.number(),
});
export type ClusterSettings = z.infer<typeof ClusterSettings>;

const Settings = z.object({
  bucket: z.string().min(1),
  prefix: z.string().optional(),
  clusters: z.array(ClusterSettings),
  retention: z.object({
    fullBackups: z.number().int().min(1),
    pitrDays: z.number().int().min(1),
    objectLockDays: z.number().int().optional(),
  }),
  documentName: z.string().default("Rewind-RunAgent"),
  topicArn: z.string().optional(),
});
export type Settings = z.infer<typeof Settings>;

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return Settings.parse({
    bucket: env.REWIND_BUCKET,
    prefix: env.REWIND_PREFIX || undefined,
    clusters: JSON.parse(env.REWIND_CLUSTERS ?? "[]"),
    retention: JSON.parse(env.REWIND_RETENTION ?? '{"fullBackups":7,"pitrDays":7}'),
    documentName: env.REWIND_DOCUMENT_NAME || undefined,
    topicArn: env.REWIND_TOPIC_ARN || undefined,
  });
}

export function clusterSettings(settings: Settings, cluster: string): ClusterSettings {
  const found = settings.clusters.find((candidate) => candidate.name === cluster);
  if (!found) {
    const known = settings.clusters.map((candidate) => candidate.name).join(", ");
    throw new UnknownCluster(
      `cluster "${cluster}" is not in this deployment's config (known: ${known}); check the "cluster" field of the input`,
    );
  }
  return found;
}
