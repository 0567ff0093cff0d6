import { GetParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import {
  ClusterSettings,
  clusterParameterName,
  type LambdaSettings,
  settingsFromEnv,
} from "../../core/contracts/lambda-settings.js";
import { ssmClient } from "./clients.js";
import { UnknownCluster } from "./errors.js";

export type { ClusterSettings } from "../../core/contracts/lambda-settings.js";
export type Settings = LambdaSettings;

/** The stack's settings from this Lambda's environment (core/contracts/lambda-settings.ts). */
export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return settingsFromEnv(env);
}

const known = new Map<string, ClusterSettings>();

/**
 * A cluster's settings from its SSM parameter (read once per cold start); a cluster the
 * deployment does not have is the input's mistake (UnknownCluster), not a crash.
 */
export async function clusterSettings(
  settings: Settings,
  cluster: string,
  ssm: SSMClient = ssmClient(),
): Promise<ClusterSettings> {
  const cached = known.get(cluster);
  if (cached) return cached;
  const name = clusterParameterName(cluster, settings.clusterParameters);
  let value: string | undefined;
  try {
    value = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (error) {
    if ((error as { name?: string }).name !== "ParameterNotFound") throw error;
  }
  if (value === undefined) {
    throw new UnknownCluster(
      `cluster "${cluster}" is not in this deployment's config (no SSM parameter ${name}); check the "cluster" field of the input`,
    );
  }
  const parsed = ClusterSettings.parse(JSON.parse(value));
  known.set(cluster, parsed);
  return parsed;
}
