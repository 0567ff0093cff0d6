import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { DEFAULT_DEPLOYMENT, deploymentNames } from "../core/contracts/deployment.js";
import { INSTALLED_AGENT } from "../infra/agent-document.js";
import { bundleAgent } from "../infra/bundle-agent.js";
import { parseRewindConfig, type RewindConfig } from "../infra/config.js";
import {
  deploymentPrefix,
  type IamModel,
  iamModelFromTemplate,
  operatorPrincipal,
  SandboxIam,
} from "./aws/iam.js";
import { LocalKms } from "./aws/kms.js";
import { RequestCounts } from "./aws/request-counts.js";
import { backupBucketRules } from "./aws/s3-bucket-rules.js";
import { S3Server } from "./aws/s3-server.js";
import { LocalSecretsManager } from "./aws/secrets-manager.js";
import { hostRoot, type SandboxHost } from "./aws/ssm.js";
import { type ExecutionResult, LocalControlPlane, type SynthesizedControlPlane } from "./control-plane.js";
import { setUpLocalAgent } from "./hosts/agent.js";
import { MariaDbServer } from "./hosts/mariadb-server.js";
import { type FullTemplate, prefixLogicalIds } from "./nested-templates.js";
import { synthesizeControlPlane } from "./sandbox.js";
import { resolveIntrinsics, type Template } from "./state-machine-definitions.js";

/** One deployment of a fleet sandbox: its name and its clusters (one host each). */
export interface FleetDeploymentSpec {
  readonly deployment: string;
  readonly clusters: readonly string[];
}

export interface FleetSandboxOptions {
  readonly root: string;
  readonly deployments: readonly FleetDeploymentSpec[];
  readonly log?: (line: string) => void;
  /** An agent bundle already built (the tests' `dist/rewind-agent.mjs`); otherwise one is bundled. */
  readonly agentBundle?: string;
}

/** A deployment running in the fleet sandbox. */
export interface FleetDeployment {
  readonly deployment: string;
  readonly bucket: string;
  readonly synthesized: SynthesizedControlPlane;
  readonly controlPlane: LocalControlPlane;
  /** Its hosts, one per cluster, tagged `<deployment>:cluster=<cluster>`. */
  readonly hosts: readonly SandboxHost[];
  readonly keyArn: string;
}

/** The sandbox's Rewind config for one deployment of a fleet: MariaDB clusters, defaults otherwise. */
export function fleetRewindConfig(root: string, spec: FleetDeploymentSpec): RewindConfig {
  return parseRewindConfig(
    {
      deployment: spec.deployment,
      clusters: spec.clusters.map((name) => ({ name, engine: "mariadb", sourcePolicy: "primary" })),
      schedules: { drillDatadir: path.join(root, spec.deployment, "drill") },
      retention: { fullBackups: 2, pitrDays: 1 },
    },
    `the fleet sandbox (${spec.deployment})`,
  );
}

/** The logical-id prefix of a deployment's resources in the shared stand-ins (none for the default). */
function idPrefix(deployment: string): string {
  return deployment === DEFAULT_DEPLOYMENT
    ? ""
    : `Dep${deployment.replace(/(^|-)([a-z0-9])/g, (_, _dash, c: string) => c.toUpperCase())}`;
}

/** A synthesized deployment with its logical ids prefixed (so two share the stand-ins). */
function prefixed(synthesized: SynthesizedControlPlane, prefix: string): SynthesizedControlPlane {
  if (!prefix) return synthesized;
  return {
    template: prefixLogicalIds(synthesized.template as FullTemplate, prefix) as Template,
    functions: Object.fromEntries(
      Object.entries(synthesized.functions).map(([id, f]) => [`${prefix}${id}`, f]),
    ),
    bucketLogicalId: `${prefix}${synthesized.bucketLogicalId}`,
    keyLogicalId: `${prefix}${synthesized.keyLogicalId}`,
  };
}

function arnOf(template: Template, logicalId: string): string {
  const intrinsic =
    template.Resources[logicalId]?.Type === "AWS::SecretsManager::Secret"
      ? { Ref: logicalId }
      : { "Fn::GetAtt": [logicalId, "Arn"] };
  return String(resolveIntrinsics(intrinsic, template));
}

/**
 * Many clusters, and more than one deployment, on one machine (issue 20): each deployment
 * synthesized from the CDK app with its own name, bucket and key; one MariaDB server per cluster
 * (a one-host cluster, tagged for its deployment); the S3, KMS and Secrets Manager stand-ins shared
 * by all, authorising every request against all the deployments' templates at once, so one
 * deployment's roles are refused what belongs to the other; a control plane per deployment.
 */
export class FleetSandbox {
  private constructor(
    readonly root: string,
    readonly deployments: readonly FleetDeployment[],
    readonly iam: SandboxIam,
    readonly servers: ReadonlyMap<string, MariaDbServer>,
    private readonly aws: { s3: S3Server; kms: LocalKms; secretsManager: LocalSecretsManager },
  ) {}

  get s3(): S3Server {
    return this.aws.s3;
  }

  get secretsEndpoint(): string {
    return this.aws.secretsManager.endpoint;
  }

  deployment(name: string): FleetDeployment {
    const found = this.deployments.find((d) => d.deployment === name);
    if (!found) throw new Error(`the fleet sandbox has no deployment ${name}`);
    return found;
  }

  /** The host of `cluster` in `deployment`. */
  host(deployment: string, cluster: string): SandboxHost {
    const hostTag = deploymentNames(deployment).hostTag;
    return this.deployment(deployment).hosts.find((host) => host.tags[hostTag] === cluster)!;
  }

  server(deployment: string, cluster: string): MariaDbServer {
    return this.servers.get(`${deployment}/${cluster}`)!;
  }

  static async up(options: FleetSandboxOptions): Promise<FleetSandbox> {
    const log = options.log ?? (() => {});
    const root = path.resolve(options.root);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const servers = new Map<string, MariaDbServer>();
    let s3: S3Server | undefined;
    let kms: LocalKms | undefined;
    let secretsManager: LocalSecretsManager | undefined;
    try {
      log("bundling the host agent");
      const agentBundle = options.agentBundle ?? (await bundleAgent(path.join(root, "rewind-agent.mjs")));
      const synthesized = options.deployments.map((spec) => {
        log(`synthesizing deployment ${spec.deployment} (${spec.clusters.length} clusters)`);
        const made = synthesizeControlPlane(root, agentBundle, fleetRewindConfig(root, spec));
        return {
          spec,
          bucket: `${spec.deployment}-sandbox`,
          synthesized: prefixed(made, idPrefix(spec.deployment)),
        };
      });
      // One IAM model for the account: every deployment's principals and resource policies.
      const models: IamModel[] = synthesized.map(({ spec, bucket, synthesized: s }) =>
        iamModelFromTemplate(s.template, { [s.bucketLogicalId]: bucket }, s.functions, spec.deployment),
      );
      const model: IamModel = {
        account: models[0]!.account,
        principals: [...models.flatMap((m) => m.principals), operatorPrincipal()],
        resourcePolicies: Object.assign({}, ...models.map((m) => m.resourcePolicies)),
      };
      const iam = new SandboxIam(model, log);
      const counts = new RequestCounts();
      const keyArns = synthesized.map(({ synthesized: s }) => arnOf(s.template, s.keyLogicalId));
      kms = new LocalKms(
        synthesized.flatMap(({ synthesized: s }) =>
          Object.entries(s.template.Resources)
            .filter(([, r]) => r.Type === "AWS::KMS::Key")
            .map(([id]) => arnOf(s.template, id)),
        ),
        iam,
        counts,
      );
      await kms.listen();
      secretsManager = new LocalSecretsManager(iam, kms, counts);
      for (const { synthesized: s } of synthesized) {
        for (const [id, secret] of Object.entries(s.template.Resources)) {
          if (secret.Type !== "AWS::SecretsManager::Secret") continue;
          const keyId = secret.Properties?.KmsKeyId;
          secretsManager.define(
            String(secret.Properties?.Name),
            arnOf(s.template, id),
            keyId ? String(resolveIntrinsics(keyId, s.template)) : undefined,
          );
        }
      }
      await secretsManager.listen();
      const first = synthesized[0]!.synthesized;
      s3 = await S3Server.start({
        storageDir: path.join(root, "s3"),
        buckets: synthesized.map((d) => d.bucket),
        rules: {
          iam: model,
          bucketKeyArns: Object.fromEntries(synthesized.map((d, i) => [d.bucket, keyArns[i]!])),
          // The deployments share one config's bucket settings here.
          ...backupBucketRules(first.template, first.bucketLogicalId),
        },
        log,
      });

      const deployments: FleetDeployment[] = [];
      let serverId = 0;
      for (const [i, { spec, bucket, synthesized: s }] of synthesized.entries()) {
        const names = deploymentNames(spec.deployment);
        const hosts: SandboxHost[] = [];
        log(`starting ${spec.clusters.length} MariaDB servers for ${spec.deployment} and onboarding them`);
        for (const cluster of spec.clusters) {
          serverId += 1;
          const name = `${spec.deployment}-${cluster}`;
          const server = await MariaDbServer.start({
            baseDir: path.join(root, "db", name),
            serverId,
            innodbBufferPoolMiB: 32,
            extraConfig: ["innodb_log_file_size=16M", "max_connections=50"],
          });
          servers.set(`${spec.deployment}/${cluster}`, server);
          await server.query(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO app.t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
          );
          const role = iam.principalNamed(`${deploymentPrefix(spec.deployment)}${cluster} database hosts`);
          const environment = {
            AWS_ACCESS_KEY_ID: role.accessKeyId,
            AWS_SECRET_ACCESS_KEY: role.secretAccessKey,
          };
          const dir = path.join(root, "hosts", name);
          const setup = await setUpLocalAgent({
            dir,
            server,
            s3Endpoint: s3.endpoint,
            bucket,
            cluster,
            deployment: spec.deployment,
            host: name,
            secrets: secretsManager,
            kms: { keyArn: keyArns[i]!, endpoint: kms.endpoint },
            bundle: agentBundle,
            agentEnv: environment,
            backup: { parallel: 1 },
          });
          const host: SandboxHost = {
            instanceId: `i-${String(serverId).padStart(17, "0")}`,
            name,
            tags: { [names.hostTag]: cluster },
            environment,
            configFile: setup.configFile,
            dir,
          };
          // What the install association leaves on the host.
          const installed = path.join(hostRoot(host), INSTALLED_AGENT);
          mkdirSync(path.dirname(installed), { recursive: true });
          copyFileSync(agentBundle, installed);
          hosts.push(host);
        }
        deployments.push({
          deployment: spec.deployment,
          bucket,
          synthesized: s,
          hosts,
          keyArn: keyArns[i]!,
          // Placeholder until every host exists: each control plane's SSM knows all of them.
          controlPlane: undefined as unknown as LocalControlPlane,
        });
      }
      const allHosts = deployments.flatMap((d) => d.hosts);
      const running = deployments.map((d) => ({
        ...d,
        controlPlane: new LocalControlPlane(d.synthesized, {
          bucket: d.bucket,
          s3Endpoint: s3!.endpoint,
          hosts: allHosts,
          agentBundle,
          log,
          iam,
          counts,
          secretsEndpoint: secretsManager!.endpoint,
          deployment: d.deployment,
        }),
      }));
      for (const d of running) await d.controlPlane.start();
      return new FleetSandbox(root, running, iam, servers, { s3, kms, secretsManager });
    } catch (error) {
      for (const server of servers.values()) await server.stop().catch(() => {});
      await s3?.stop().catch(() => {});
      kms?.close();
      secretsManager?.close();
      throw error;
    }
  }

  /**
   * Every cluster's full-backup schedule of `deployment` fired at the same moment (1,000 backups
   * due at 03:15 with no flexible window), with SSM's SendCommand throttled to `rate`: how long
   * until every execution ended, how they ended, and how often SSM refused a SendCommand for its
   * rate (the state machines' and the Lambdas' retries must absorb every one).
   */
  async stampede(
    deployment: string,
    rate: { perSecond: number; burst: number },
  ): Promise<{
    seconds: number;
    throttled: number;
    results: { cluster: string; result: ExecutionResult }[];
  }> {
    const { controlPlane } = this.deployment(deployment);
    const clusters = this.deployment(deployment).hosts.map(
      (host) => host.tags[deploymentNames(deployment).hostTag]!,
    );
    controlPlane.ssm.throttleSendCommand(rate);
    const before = controlPlane.ssm.throttled;
    const started = performance.now();
    try {
      const results = await Promise.all(
        clusters.map(async (cluster) => ({
          cluster,
          result: (await controlPlane.fireSchedule(`rewind-full-${cluster}`)) as ExecutionResult,
        })),
      );
      return {
        seconds: (performance.now() - started) / 1000,
        throttled: controlPlane.ssm.throttled - before,
        results,
      };
    } finally {
      controlPlane.ssm.throttleSendCommand(undefined);
    }
  }

  async down({ remove = true } = {}): Promise<void> {
    for (const d of this.deployments) d.controlPlane.stop();
    for (const server of this.servers.values()) await server.stop().catch(() => {});
    await this.aws.s3.stop();
    this.aws.kms.close();
    this.aws.secretsManager.close();
    if (remove) rmSync(this.root, { recursive: true, force: true });
  }
}
