import {
  type ClusterSettings,
  type LambdaSettings,
  settingsFromEnv,
} from "../../core/contracts/lambda-settings.js";
import { UnknownCluster } from "./errors.js";

export type { ClusterSettings } from "../../core/contracts/lambda-settings.js";
export type Settings = LambdaSettings;

/** The stack's settings from this Lambda's environment (core/contracts/lambda-settings.ts). */
export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  return settingsFromEnv(env);
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
