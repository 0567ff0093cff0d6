import { z } from "zod";
import { EngineName } from "../engine.js";

/**
 * What the stack tells every Lambda: written by infra (`settingsToEnv`, CDK tokens allowed for the
 * bucket and topic), read once per cold start by the Lambdas (`settingsFromEnv`). The variable
 * names exist here only. A malformed environment is a deployment bug, so reading it throws plainly.
 * Each cluster's settings are not in the environment (4 KB in all, a few dozen clusters) but in an
 * SSM parameter of their own, `<clusterParameters><cluster>` (`clusterParameterName`), which a
 * Lambda reads for the cluster its input names, once per cold start.
 */
export const ClusterSettings = z.object({
  name: z.string(),
  engine: EngineName,
  sourcePolicy: z.enum(["primary", "replica", "prefer-replica"]),
  maxReplicaLagSeconds: z.number(),
});
export type ClusterSettings = z.infer<typeof ClusterSettings>;

/** Where the default deployment puts each cluster's settings (an SSM String parameter holding their JSON; DeploymentNames.clusterParameters). */
export const CLUSTER_PARAMETERS = "/rewind/clusters/";

export function clusterParameterName(cluster: string, prefix = CLUSTER_PARAMETERS): string {
  return `${prefix}${cluster}`;
}

export const LambdaSettings = z.object({
  bucket: z.string().min(1),
  /** The prefix of the clusters' parameters (`/rewind/clusters/`). */
  clusterParameters: z.string().startsWith("/").endsWith("/").default(CLUSTER_PARAMETERS),
  retention: z.object({
    fullBackups: z.number().int().min(1),
    pitrDays: z.number().int().min(1),
    objectLockDays: z.number().int().optional(),
  }),
  documentName: z.string().default("Rewind-RunAgent"),
  /** The tag key that makes an instance one of the deployment's hosts (`rewind:cluster`). */
  hostTag: z.string().min(1).default("rewind:cluster"),
  topicArn: z.string().optional(),
});
export type LambdaSettings = z.infer<typeof LambdaSettings>;

/** The environment variable of each setting. */
export const SETTINGS_ENV = {
  bucket: "REWIND_BUCKET",
  clusterParameters: "REWIND_CLUSTER_PARAMETERS",
  retention: "REWIND_RETENTION",
  documentName: "REWIND_DOCUMENT_NAME",
  hostTag: "REWIND_HOST_TAG",
  topicArn: "REWIND_TOPIC_ARN",
} as const satisfies Record<keyof LambdaSettings, string>;

/** The Lambdas' environment for these settings (objects as JSON; unset ones left out). */
export function settingsToEnv(settings: z.input<typeof LambdaSettings>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, name] of Object.entries(SETTINGS_ENV) as [keyof LambdaSettings, string][]) {
    const value = settings[key];
    if (value === undefined) continue;
    env[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return env;
}

export function settingsFromEnv(env: Readonly<Record<string, string | undefined>>): LambdaSettings {
  const json = (name: string) => (env[name] ? JSON.parse(env[name]!) : undefined);
  return LambdaSettings.parse({
    bucket: env[SETTINGS_ENV.bucket],
    clusterParameters: env[SETTINGS_ENV.clusterParameters] || undefined,
    retention: json(SETTINGS_ENV.retention) ?? { fullBackups: 7, pitrDays: 7 },
    documentName: env[SETTINGS_ENV.documentName] || undefined,
    topicArn: env[SETTINGS_ENV.topicArn] || undefined,
    hostTag: env[SETTINGS_ENV.hostTag] || undefined,
  });
}
