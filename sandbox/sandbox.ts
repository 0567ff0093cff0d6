import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { App, type CfnElement } from "aws-cdk-lib";
import type { IConstruct } from "constructs";
import { deploymentNames } from "../core/contracts/deployment.js";
import { INSTALLED_AGENT } from "../infra/agent-document.js";
import { bundleAgent } from "../infra/bundle-agent.js";
import { parseRewindConfig, type RewindConfig } from "../infra/config.js";
import { RewindStack } from "../infra/rewind-stack.js";
import {
  type IamModel,
  type IamPrincipal,
  iamModelFromTemplate,
  operatorPrincipal,
  SandboxIam,
} from "./aws/iam.js";
import { LocalKms } from "./aws/kms.js";
import { RequestCounts } from "./aws/request-counts.js";
import { backupBucketRules } from "./aws/s3-bucket-rules.js";
import { S3Server } from "./aws/s3-server.js";
import { LocalSecretsManager } from "./aws/secrets-manager.js";
import type { SandboxHost } from "./aws/ssm.js";
import { hostRoot } from "./aws/ssm.js";
import { LocalControlPlane, type SynthesizedControlPlane } from "./control-plane.js";
import { accountOf, setUpLocalAgent, writeRestoreTargetConfig } from "./hosts/agent.js";
import { MariaDbServer } from "./hosts/mariadb-server.js";
import { StreamerService } from "./hosts/streamer-service.js";
import { loadDataset } from "./hosts/workload.js";
import { deploymentTemplate } from "./nested-templates.js";
import { run, waitFor } from "./processes.js";
import { resolveIntrinsics, type Template } from "./state-machine-definitions.js";

export const CLUSTER = "orders";
const REPL = { user: "repl", password: randomBytes(12).toString("base64url") };

export interface SandboxHostState extends SandboxHost {
  readonly role: "primary" | "replica" | "standby";
  readonly socket: string;
  readonly port: number;
  readonly defaultsFile: string;
  readonly serverId: number;
  readonly datadir: string;
}

/** What `sandbox up` leaves for `status`, `start`, `schedule` and `down` in other processes. */
export interface SandboxState {
  readonly root: string;
  readonly pid: number;
  readonly bucket: string;
  readonly s3Endpoint: string;
  readonly agentBundle: string;
  readonly hosts: SandboxHostState[];
  readonly controlPlane: string;
  readonly kmsEndpoint: string;
  readonly secretsManagerEndpoint: string;
}

export interface SandboxOptions {
  readonly root: string;
  /** Size of the generated dataset on the primary. */
  readonly datasetMb: number;
  readonly log?: (line: string) => void;
  /**
   * Changes the synthesized template before anything runs from it, as a different deploy would:
   * a test takes a permission away and shows the story fail naming it.
   */
  readonly editTemplate?: (template: Template) => void;
}

/** The Rewind config the sandbox deploys: one MariaDB cluster, backups from a healthy replica. */
export function sandboxRewindConfig(root: string) {
  return parseRewindConfig(
    {
      clusters: [
        { name: CLUSTER, engine: "mariadb", sourcePolicy: "prefer-replica", maxReplicaLagSeconds: 60 },
      ],
      schedules: {
        full: "cron(15 3 * * ? *)",
        incremental: "cron(15 9,15,21 * * ? *)",
        binlogIntervalMinutes: 1,
        drill: "cron(0 6 ? * SUN *)",
        timeZone: "UTC",
        drillDatadir: path.join(root, "drill", "data"),
      },
      retention: { fullBackups: 2, pitrDays: 1 },
      alarms: { rpoSeconds: 30 },
    },
    "the sandbox",
  );
}

function logicalId(construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return element.stack.resolve(element.logicalId) as string;
}

/** `cdk synth` of the Rewind app in-process, as deployed: the template and which Lambda is which. */
export function synthesizeControlPlane(
  root: string,
  agentBundle: string,
  config: RewindConfig = sandboxRewindConfig(root),
): SynthesizedControlPlane {
  const app = new App({ outdir: path.join(root, `cdk.out-${config.deployment}`) });
  const stack = new RewindStack(app, deploymentNames(config.deployment).stack, { config, agentBundle });
  const functions = stack.functions;
  const folders: [IConstruct, string][] = [
    [functions.selectSource, "select-source"],
    [functions.verify, "verify"],
    [functions.planRestore, "plan-restore"],
    [functions.retention, "retention"],
    [functions.notify, "notify"],
    [functions.rotateAccounts, "rotate-accounts"],
  ];
  // The parent and its clusters' nested stacks, as one template.
  const template = deploymentTemplate(stack, app.synth()) as Template;
  return {
    template,
    functions: Object.fromEntries(folders.map(([fn, folder]) => [logicalId(fn), folder])),
    bucketLogicalId: logicalId(stack.storage.bucket),
    keyLogicalId: logicalId(stack.storage.key),
  };
}

/**
 * IAM as deployed: the template's principals and resource policies (the bucket named as the
 * sandbox named it), plus the sandbox operator (the person at the console, allowed everything).
 * `edit` changes the template's policies first: a test takes one permission away.
 */
export function sandboxIamModel(synthesized: SynthesizedControlPlane, bucket: string): IamModel {
  const model = iamModelFromTemplate(
    synthesized.template,
    { [synthesized.bucketLogicalId]: bucket },
    synthesized.functions,
  );
  return { ...model, principals: [...model.principals, operatorPrincipal()] };
}

/** The ARN the stand-ins give a template resource (`Fn::GetAtt Arn`, or `Ref` for a secret). */
function arnOf(template: Template, logicalId: string): string {
  const resource = template.Resources[logicalId]!;
  const intrinsic =
    resource.Type === "AWS::SecretsManager::Secret"
      ? { Ref: logicalId }
      : { "Fn::GetAtt": [logicalId, "Arn"] };
  return String(resolveIntrinsics(intrinsic, template));
}

function hostState(
  server: MariaDbServer,
  host: Omit<SandboxHostState, "socket" | "port" | "defaultsFile" | "serverId" | "datadir">,
): SandboxHostState {
  return {
    ...host,
    socket: server.socket,
    port: server.port,
    defaultsFile: server.defaultsFile,
    serverId: server.serverId,
    datadir: server.datadir,
  };
}

/**
 * The whole of Rewind on one machine (DESIGN §5): a MariaDB primary, a GTID replica and a standby
 * host to restore onto (each a sandbox "managed instance" tagged rewind:cluster=orders, with an
 * agent config standing for its /etc/rewind/agent.json), fauxqs as S3, a local key and secrets
 * file, and the control plane synthesized from the CDK app and run by LocalControlPlane.
 */
export class Sandbox {
  private constructor(
    readonly state: SandboxState,
    readonly controlPlane: LocalControlPlane,
    readonly servers: MariaDbServer[],
    /** The stand-ins this process runs (none when attached to another process's sandbox). */
    readonly aws: { s3?: S3Server; kms?: LocalKms; secretsManager?: LocalSecretsManager } = {},
    /** binlog-stream on each host, as its systemd service (none when attached). */
    readonly streamers: ReadonlyMap<string, StreamerService> = new Map(),
  ) {}

  /** The streamer service of the host in `role`. */
  streamer(role: SandboxHostState["role"]): StreamerService {
    return this.streamers.get(this.host(role).instanceId)!;
  }

  /** The sandbox operator's credentials: a person at the console, allowed everything. */
  get operator(): IamPrincipal {
    return operatorPrincipal();
  }

  /** Requests the stand-ins answered, by API, the S3 stand-in's included. */
  async requestCounts({ reset = false } = {}): Promise<Record<string, number>> {
    const counts = new RequestCounts();
    counts.merge(this.controlPlane.counts.snapshot());
    if (this.aws.s3) counts.merge(await this.aws.s3.requestCounts({ reset }));
    if (reset) this.controlPlane.counts.reset();
    return counts.snapshot();
  }

  get primary(): MariaDbServer {
    return this.servers[0]!;
  }
  get replica(): MariaDbServer {
    return this.servers[1]!;
  }
  get standby(): MariaDbServer {
    return this.servers[2]!;
  }
  host(role: SandboxHostState["role"]): SandboxHostState {
    return this.state.hosts.find((host) => host.role === role)!;
  }

  static async up(options: SandboxOptions): Promise<Sandbox> {
    const log = options.log ?? (() => {});
    const root = path.resolve(options.root);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const bucket = "rewind-sandbox";
    const servers: MariaDbServer[] = [];
    let s3: S3Server | undefined;
    let kms: LocalKms | undefined;
    let secretsManager: LocalSecretsManager | undefined;
    try {
      log("bundling the host agent and synthesizing the CDK app");
      const agentBundle = await bundleAgent(path.join(root, "rewind-agent.mjs"));
      const synthesized = synthesizeControlPlane(root, agentBundle);
      options.editTemplate?.(synthesized.template);
      const controlPlaneFile = path.join(root, "control-plane.json");
      writeFileSync(controlPlaneFile, JSON.stringify(synthesized));
      const { template } = synthesized;
      const model = sandboxIamModel(synthesized, bucket);
      const iam = new SandboxIam(model, log);
      const counts = new RequestCounts();
      const keyArn = arnOf(template, synthesized.keyLogicalId);
      const resourcesOf = (type: string) =>
        Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);

      log("starting the AWS stand-ins (S3 on fauxqs, KMS, Secrets Manager), enforcing IAM from the template");
      kms = new LocalKms(
        resourcesOf("AWS::KMS::Key").map(([id]) => arnOf(template, id)),
        iam,
        counts,
      );
      await kms.listen();
      secretsManager = new LocalSecretsManager(iam, kms, counts);
      for (const [id, secret] of resourcesOf("AWS::SecretsManager::Secret")) {
        const keyId = secret.Properties?.KmsKeyId;
        secretsManager.define(
          String(secret.Properties?.Name),
          arnOf(template, id),
          keyId ? String(resolveIntrinsics(keyId, template)) : undefined,
        );
      }
      await secretsManager.listen();
      s3 = await S3Server.start({
        storageDir: path.join(root, "s3"),
        buckets: [bucket],
        // Versions, Object Lock and lifecycle as the template declares the bucket.
        rules: { iam: model, kmsKeyArn: keyArn, ...backupBucketRules(template, synthesized.bucketLogicalId) },
        log,
      });

      log("starting a MariaDB primary, a GTID replica and a standby host");
      const primary = await MariaDbServer.start({
        baseDir: path.join(root, "db-primary"),
        serverId: 1,
        innodbBufferPoolMiB: 256,
      });
      servers.push(primary);
      const replica = await MariaDbServer.start({ baseDir: path.join(root, "db-replica"), serverId: 2 });
      servers.push(replica);
      const standby = await MariaDbServer.start({
        baseDir: path.join(root, "db-standby"),
        serverId: 3,
        extraConfig: ["read_only=1"],
      });
      servers.push(standby);
      // The replica's first link uses a user of the sandbox's own, made before the replica starts
      // at the primary's position: what `users ensure` creates after that reaches the replica
      // through replication, and a restore with --replica-of uses the accounts' replication one.
      await primary.createUser(REPL, "REPLICATION SLAVE");
      await replica.replicateFrom(primary, REPL);

      // The instance role's credentials, as the instance metadata service hands them out.
      const hostRole = iam.principalNamed(`${CLUSTER} database hosts`);
      const environment = {
        AWS_ACCESS_KEY_ID: hostRole.accessKeyId,
        AWS_SECRET_ACCESS_KEY: hostRole.secretAccessKey,
      };
      const agentDir = (name: string) => path.join(root, "hosts", name);
      // Onboarding: the accounts secret as the stack created it, then `users ensure` on the
      // primary (as root over the socket: no account exists yet); the replica gets the accounts
      // through replication.
      log("onboarding the cluster: rewind-agent users ensure on the primary");
      const setup = await setUpLocalAgent({
        dir: agentDir("db-primary"),
        server: primary,
        s3Endpoint: s3.endpoint,
        bucket,
        cluster: CLUSTER,
        host: "db-primary",
        secrets: secretsManager,
        kms: { keyArn, endpoint: kms.endpoint },
        bundle: agentBundle,
        agentEnv: environment,
      });
      // Once the accounts have reached it, the replica logs in to its source with Rewind's
      // replication account, as a replica set up after onboarding would (a rotation changes it).
      await waitForReplica(primary, replica);
      const replication = accountOf(setup, "replication");
      await replica.replicateAs({ user: replication.username, password: replication.password });
      // The standby replicates from nobody: it is onboarded the same way, on its own.
      await setUpLocalAgent({
        dir: agentDir("db-standby"),
        server: standby,
        s3Endpoint: s3.endpoint,
        bucket,
        cluster: CLUSTER,
        host: "db-standby",
        secrets: secretsManager,
        kms: { keyArn, endpoint: kms.endpoint },
        bundle: agentBundle,
        agentEnv: environment,
      });

      // Every host can be restored onto: the agent starts and stops its server with these scripts.
      const hostConfig = (server: MariaDbServer, name: string) => {
        const dir = agentDir(name);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const file = path.join(dir, "agent.json");
        writeRestoreTargetConfig(setup.configFile, server, file);
        const config = JSON.parse(readFileSync(file, "utf8"));
        writeFileSync(
          file,
          JSON.stringify(
            {
              ...config,
              host: name,
              connection: { socket: server.socket },
              myCnfPaths: [server.defaultsFile],
              stateDir: path.join(dir, "state"),
              workDir: path.join(dir, "work"),
            },
            null,
            2,
          ),
          { mode: 0o600 },
        );
        return file;
      };
      const tags = { "rewind:cluster": CLUSTER };
      const hosts: SandboxHostState[] = [
        hostState(primary, {
          instanceId: "i-0000000000000001a",
          name: "db-primary",
          role: "primary",
          tags,
          environment,
          configFile: hostConfig(primary, "db-primary"),
          dir: agentDir("db-primary"),
        }),
        hostState(replica, {
          instanceId: "i-0000000000000002b",
          name: "db-replica",
          role: "replica",
          tags,
          environment,
          configFile: hostConfig(replica, "db-replica"),
          dir: agentDir("db-replica"),
        }),
        hostState(standby, {
          instanceId: "i-0000000000000003c",
          name: "db-standby",
          role: "standby",
          tags,
          environment,
          configFile: hostConfig(standby, "db-standby"),
          dir: agentDir("db-standby"),
        }),
      ];

      log(`loading about ${options.datasetMb} MB into the primary; the replica follows`);
      await loadDataset(primary, { megabytes: options.datasetMb });
      await waitForReplica(primary, replica);

      const state: SandboxState = {
        root,
        pid: process.pid,
        bucket,
        s3Endpoint: s3.endpoint,
        agentBundle,
        hosts,
        controlPlane: controlPlaneFile,
        kmsEndpoint: kms.endpoint,
        secretsManagerEndpoint: secretsManager.endpoint,
      };
      writeFileSync(path.join(root, "sandbox.json"), JSON.stringify(state, null, 2));
      const controlPlane = new LocalControlPlane(synthesized, {
        bucket,
        s3Endpoint: s3.endpoint,
        hosts,
        agentBundle,
        log,
        iam,
        counts,
        secretsEndpoint: secretsManager.endpoint,
      });
      await controlPlane.start();
      // Secrets Manager invokes the template's rotation function for each step of a rotation.
      secretsManager.rotation = async (_secret, event) => {
        await controlPlane.invokeFunction("rotate-accounts", event);
      };
      log("installing the agent on every host and starting binlog-stream, as `rewind-agent install` would");
      const streamers = new Map(
        hosts.map((host) => {
          // What the install association leaves on the host: the bundle its service and the
          // watchdog (Rewind-RunInstalledAgent) run.
          const installed = path.join(hostRoot(host), INSTALLED_AGENT);
          mkdirSync(path.dirname(installed), { recursive: true });
          copyFileSync(agentBundle, installed);
          return [
            host.instanceId,
            new StreamerService(installed, host.configFile, host.dir, host.environment ?? {}),
          ] as const;
        }),
      );
      for (const streamer of streamers.values()) streamer.start();
      return new Sandbox(state, controlPlane, servers, { s3, kms, secretsManager }, streamers);
    } catch (error) {
      for (const server of servers) await server.stop().catch(() => {});
      await s3?.stop().catch(() => {});
      kms?.close();
      secretsManager?.close();
      throw error;
    }
  }

  /**
   * Attaches to a sandbox that `sandbox up` keeps running in another process, to run state
   * machines and schedules against it. Its servers are reached through the agents, not directly.
   */
  static async attach(root: string, log?: (line: string) => void): Promise<Sandbox> {
    const state = Sandbox.readState(root);
    const synthesized = JSON.parse(readFileSync(state.controlPlane, "utf8")) as SynthesizedControlPlane;
    const iam = new SandboxIam(sandboxIamModel(synthesized, state.bucket), log);
    const controlPlane = new LocalControlPlane(synthesized, { ...state, log, iam });
    await controlPlane.start();
    return new Sandbox(state, controlPlane, []);
  }

  static readState(root: string): SandboxState {
    const file = path.join(path.resolve(root), "sandbox.json");
    if (!existsSync(file)) throw new Error(`no sandbox in ${root}; start one with \`npm run sandbox -- up\``);
    return JSON.parse(readFileSync(file, "utf8")) as SandboxState;
  }

  /** Stops every server (also those the agent restarted) and the S3 stand-in; `remove` deletes it all. */
  async down({ remove = true } = {}): Promise<void> {
    for (const streamer of this.streamers.values()) await streamer.stop();
    this.controlPlane.stop();
    for (const host of this.state.hosts) {
      // The agent may have restarted a server outside our process tree (server.start).
      await run("mariadb-admin", [`--defaults-file=${host.defaultsFile}`, "-uroot", "shutdown"]).catch(
        () => {},
      );
    }
    for (const server of this.servers) await server.stop().catch(() => {});
    await this.aws.s3?.stop();
    this.aws.kms?.close();
    this.aws.secretsManager?.close();
    if (remove) rmSync(this.state.root, { recursive: true, force: true });
  }
}

/** Waits until the replica has applied everything the primary has written so far. */
export async function waitForReplica(primary: MariaDbServer, replica: MariaDbServer): Promise<void> {
  const target = await primary.gtidBinlogPos();
  await waitFor(
    "the replica to catch up",
    async () => {
      const [row] = await replica.query(`SELECT MASTER_GTID_WAIT('${target}', 1)`);
      return row?.[0] === "0";
    },
    { timeoutMs: 600_000, intervalMs: 200 },
  );
}

/**
 * Removes the statement `sid` from the policies of the template whose logical id starts with
 * `policyPrefix` (`ordersHostPolicy`, `FunctionsRetentionRoleDefaultPolicy`), failing loudly when
 * there is none, so a test cannot remove nothing.
 */
export function removeStatement(template: Template, policyPrefix: string, sid: string): void {
  let removed = 0;
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (!id.startsWith(policyPrefix)) continue;
    const document = resource.Properties?.PolicyDocument as { Statement: { Sid?: string }[] } | undefined;
    if (!document) continue;
    const before = document.Statement.length;
    document.Statement = document.Statement.filter((statement) => statement.Sid !== sid);
    removed += before - document.Statement.length;
  }
  if (removed === 0) throw new Error(`no statement ${sid} in a policy ${policyPrefix}…`);
}
