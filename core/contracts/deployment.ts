import { z } from "zod";

/**
 * A deployment's name (config `deployment`, default `rewind`) prefixes every name it gives AWS
 * resources, so two deployments (production and staging) share an account and region without
 * touching each other: the SSM documents, the state machines, the schedule group, the dashboard,
 * the hosts' tag, the secrets, the settings parameters and the host policies. Each deployment has
 * its own bucket and key, so the S3 layout needs no prefix. The default keeps the names that
 * deployments made before the setting existed.
 */
export const DEFAULT_DEPLOYMENT = "rewind";

/** Lower-case letters, digits and hyphens; short, since it prefixes names AWS limits to 64 characters. */
export const DEPLOYMENT_NAME = /^[a-z][a-z0-9-]{0,15}$/;

export function validateDeploymentName(name: string): string | undefined {
  return DEPLOYMENT_NAME.test(name)
    ? undefined
    : `deployment name "${name}" must be 1 to 16 lower-case letters, digits and hyphens, starting with a letter`;
}

/** The `deployment` field of the stack's config and of a host's agent config (default `rewind`). */
export const DeploymentName = z
  .string()
  .default(DEFAULT_DEPLOYMENT)
  .superRefine((name, ctx) => {
    const problem = validateDeploymentName(name);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** The title-case prefix of the deployment's console-facing names (`Rewind-Backup`, `staging-Backup`). */
function title(deployment: string): string {
  return deployment === DEFAULT_DEPLOYMENT ? "Rewind" : deployment;
}

export type StateMachineBase = "Backup" | "Restore" | "RestoreDrill";

/** Every name a deployment gives, in one place: infra writes them, the agent, Lambdas and sandbox read them. */
export function deploymentNames(deployment: string = DEFAULT_DEPLOYMENT) {
  const problem = validateDeploymentName(deployment);
  if (problem) throw new Error(problem);
  const t = title(deployment);
  return {
    deployment,
    /** The CloudFormation stack (`Rewind`, `Rewind-staging`). */
    stack: deployment === DEFAULT_DEPLOYMENT ? "Rewind" : `Rewind-${deployment}`,
    stateMachine: (base: StateMachineBase) => `${t}-${base}`,
    runAgentDocument: `${t}-RunAgent`,
    installedAgentDocument: `${t}-RunInstalledAgent`,
    dashboard: t,
    /** CloudWatch namespace of the deployment's metrics (`Rewind`, `Rewind/staging`): clusters of two deployments may share names. */
    metricsNamespace: deployment === DEFAULT_DEPLOYMENT ? "Rewind" : `Rewind/${deployment}`,
    scheduleGroup: deployment,
    /** The tag that makes an instance one of this deployment's database hosts: `<deployment>:cluster=<name>`. */
    hostTag: `${deployment}:cluster`,
    /** The State Manager association that installs the agent on a cluster's hosts. */
    installAssociation: (cluster: string) => `${deployment}-install-${cluster}`,
    /** The managed policy a cluster's hosts' instance role attaches. */
    hostPolicy: (cluster: string) => `${deployment}-host-${cluster}`,
    /** Prefix of the clusters' accounts secrets: `<deployment>/<cluster>/accounts`. */
    secretsPrefix: `${deployment}/`,
    accountsSecret: (cluster: string) => `${deployment}/${cluster}/accounts`,
    /** Prefix of the clusters' settings parameters: `/<deployment>/clusters/<cluster>`. */
    clusterParameters: `/${deployment}/clusters/`,
  };
}

/** The metadata key on a host policy's template resource naming the cluster whose hosts attach it. */
export const HOST_POLICY_METADATA = "rewind:hostsOfCluster";

export type DeploymentNames = ReturnType<typeof deploymentNames>;
