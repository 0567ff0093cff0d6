import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SendCommandCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentNames } from "../../core/contracts/deployment.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import type { IamPrincipal } from "../../sandbox/aws/iam.js";
import { FleetSandbox } from "../../sandbox/fleet.js";
import { scratchDir } from "../support.js";

const region = "us-east-1";
const credentials = (principal: IamPrincipal) => ({
  accessKeyId: principal.accessKeyId,
  secretAccessKey: principal.secretAccessKey,
});

/** The sandbox's fleet (issue 20): many clusters at once, and two deployments side by side. */
describe("a fleet in the sandbox", () => {
  describe("20 clusters whose full backups are all due at once", () => {
    const scratch = scratchDir("fleet-stampede");
    const clusters = Array.from({ length: 20 }, (_, i) => `c${String(i + 1).padStart(2, "0")}`);
    let fleet: FleetSandbox;

    beforeAll(async () => {
      fleet = await FleetSandbox.up({
        root: scratch.dir,
        deployments: [{ deployment: "rewind", clusters }],
        agentBundle: AGENT_BUNDLE,
      });
    }, 600_000);
    afterAll(async () => {
      await fleet?.down();
      scratch.remove();
    });

    it("every backup completes, SSM's throttling is hit, and no execution fails on it", async () => {
      // SSM's SendCommand rate is an account quota; 4 a second with a burst of 4 is far below
      // what 20 executions and their select-source Lambdas ask for at once.
      const run = await fleet.stampede("rewind", { perSecond: 4, burst: 4 });
      console.log(
        `stampede of ${clusters.length}: ${run.seconds.toFixed(1)} s, SendCommand throttled ${run.throttled} times`,
      );
      const failed = run.results.filter(({ result }) => result.status !== "SUCCEEDED");
      expect(
        failed.map(({ cluster, result }) => `${cluster}: ${result.error}: ${result.cause}`),
        "executions that failed",
      ).toEqual([]);
      expect(run.throttled).toBeGreaterThan(0);
      // Each backup is in its own cluster's prefix, complete (its manifest written last).
      const s3 = new S3Client({
        region,
        endpoint: fleet.s3.endpoint,
        forcePathStyle: true,
        credentials: credentials(fleet.iam.principalNamed("sandbox operator")),
      });
      for (const cluster of clusters) {
        const listed = await s3.send(
          new ListObjectsV2Command({
            Bucket: fleet.deployment("rewind").bucket,
            Prefix: `${cluster}/backups/`,
          }),
        );
        expect(
          (listed.Contents ?? []).some((o) => o.Key!.endsWith("/manifest.json")),
          `${cluster} has a complete backup`,
        ).toBe(true);
      }
    }, 900_000);
  });

  describe("two deployments in one account: rewind and staging, each with a cluster named orders", () => {
    const scratch = scratchDir("fleet-two");
    let fleet: FleetSandbox;

    beforeAll(async () => {
      fleet = await FleetSandbox.up({
        root: scratch.dir,
        deployments: [
          { deployment: "rewind", clusters: ["orders"] },
          { deployment: "staging", clusters: ["orders"] },
        ],
        agentBundle: AGENT_BUNDLE,
      });
    }, 600_000);
    afterAll(async () => {
      await fleet?.down();
      scratch.remove();
    });

    it("both back up through their own state machines, into their own buckets", async () => {
      const [production, staging] = await Promise.all(
        ["rewind", "staging"].map((d) =>
          fleet.deployment(d).controlPlane.startExecution(deploymentNames(d).stateMachine("Backup"), {
            cluster: "orders",
            type: "full",
          }),
        ),
      );
      expect(production!.status, `${production!.error}: ${production!.cause}`).toBe("SUCCEEDED");
      expect(staging!.status, `${staging!.error}: ${staging!.cause}`).toBe("SUCCEEDED");
      expect(production!.name).toBe("Rewind-Backup");
      expect(staging!.name).toBe("staging-Backup");
      const operator = new S3Client({
        region,
        endpoint: fleet.s3.endpoint,
        forcePathStyle: true,
        credentials: credentials(fleet.iam.principalNamed("sandbox operator")),
      });
      for (const d of ["rewind", "staging"]) {
        const listed = await operator.send(
          new ListObjectsV2Command({ Bucket: fleet.deployment(d).bucket, Prefix: "orders/backups/" }),
        );
        expect(listed.Contents?.length ?? 0, `${d}'s bucket holds its backup`).toBeGreaterThan(0);
      }
    }, 600_000);

    it("neither deployment's hosts, Lambdas or state machines can touch the other's hosts, objects or secrets", async () => {
      const staging = fleet.deployment("staging");
      const productionHost = fleet.iam.principalNamed("orders database hosts");
      const stagingHost = fleet.iam.principalNamed("staging: orders database hosts");
      const s3As = (principal: IamPrincipal) =>
        new S3Client({
          region,
          endpoint: fleet.s3.endpoint,
          forcePathStyle: true,
          credentials: credentials(principal),
        });
      // The production hosts cannot list or read staging's backups (same cluster name, other bucket).
      const stagingObjects = await s3As(fleet.iam.principalNamed("sandbox operator")).send(
        new ListObjectsV2Command({ Bucket: staging.bucket, Prefix: "orders/" }),
      );
      const someKey = stagingObjects.Contents![0]!.Key!;
      await expect(
        s3As(productionHost).send(new ListObjectsV2Command({ Bucket: staging.bucket, Prefix: "orders/" })),
      ).rejects.toMatchObject({ name: "AccessDenied" });
      await expect(
        s3As(productionHost).send(new GetObjectCommand({ Bucket: staging.bucket, Key: someKey })),
      ).rejects.toMatchObject({ name: "AccessDenied" });
      // …while staging's own hosts can.
      await expect(
        s3As(stagingHost).send(new ListObjectsV2Command({ Bucket: staging.bucket, Prefix: "orders/" })),
      ).resolves.toMatchObject({ KeyCount: expect.any(Number) });
      // Secrets: each host reads its own deployment's accounts secret only.
      const secretsAs = (principal: IamPrincipal) =>
        new SecretsManagerClient({
          region,
          endpoint: fleet.secretsEndpoint,
          credentials: credentials(principal),
        });
      await expect(
        secretsAs(productionHost).send(new GetSecretValueCommand({ SecretId: "staging/orders/accounts" })),
      ).rejects.toMatchObject({ name: "AccessDeniedException" });
      await expect(
        secretsAs(stagingHost).send(new GetSecretValueCommand({ SecretId: "rewind/orders/accounts" })),
      ).rejects.toMatchObject({ name: "AccessDeniedException" });
      await expect(
        secretsAs(stagingHost).send(new GetSecretValueCommand({ SecretId: "staging/orders/accounts" })),
      ).resolves.toMatchObject({ Name: "staging/orders/accounts" });
      // Commands: production's select-source and backup state machine may not run anything on
      // staging's host (tagged staging:cluster=orders), and the other way round.
      const stagingHostId = fleet.host("staging", "orders").instanceId;
      const productionHostId = fleet.host("rewind", "orders").instanceId;
      const ssmAs = (d: string, principal: IamPrincipal) =>
        new SSMClient({
          region,
          endpoint: fleet.deployment(d).controlPlane.ssm.endpoint,
          credentials: credentials(principal),
        });
      const send = (d: string, principal: IamPrincipal, instanceId: string) =>
        ssmAs(d, principal).send(
          new SendCommandCommand({
            DocumentName: deploymentNames(d).runAgentDocument,
            InstanceIds: [instanceId],
            Parameters: { Command: ["status"] },
          }),
        );
      for (const [d, caller, target] of [
        ["rewind", "Lambda select-source", stagingHostId],
        ["rewind", "state machine Rewind-Backup", stagingHostId],
        ["staging", "staging: Lambda select-source", productionHostId],
        ["staging", "staging: state machine staging-Backup", productionHostId],
      ] as const) {
        await expect(
          send(d, fleet.iam.principalNamed(caller), target),
          `${caller} → ${target}`,
        ).rejects.toMatchObject({
          name: "AccessDeniedException",
        });
      }
      await expect(
        send("staging", fleet.iam.principalNamed("staging: Lambda select-source"), stagingHostId),
      ).resolves.toMatchObject({ Command: { Status: "Pending" } });
      // Retention of one deployment cannot delete the other's versions; Scheduler of one cannot
      // start the other's state machines (checked against the same IAM model).
      const decide = (caller: string, action: string, resource: string) =>
        fleet.iam.decide({ principal: fleet.iam.principalNamed(caller), action, resource });
      expect(
        decide("Lambda retention", "s3:DeleteObjectVersion", `arn:aws:s3:::${staging.bucket}/${someKey}`),
      ).not.toBe("Allowed");
      expect(
        decide(
          "staging: Lambda retention",
          "s3:DeleteObjectVersion",
          `arn:aws:s3:::${staging.bucket}/${someKey}`,
        ),
      ).toBe("Allowed");
    }, 300_000);
  });
});
