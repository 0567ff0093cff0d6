import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from "@aws-sdk/client-sfn";
import { SendCommandCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BinlogManifest } from "../../core/binlog/manifest.js";
import { addToBinlogIndex } from "../../core/store/binlog-index.js";
import { INSTALLED_AGENT } from "../../infra/agent-document.js";
import { type IamPrincipal, SandboxIam } from "../../sandbox/aws/iam.js";
import { LocalKms } from "../../sandbox/aws/kms.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";
import { TaskCallbacks } from "../../sandbox/aws/sfn-callbacks.js";
import { hostRoot, LocalSsm } from "../../sandbox/aws/ssm.js";
import type { SynthesizedControlPlane } from "../../sandbox/control-plane.js";
import { agentDocuments } from "../../sandbox/control-plane.js";
import { removeStatement, sandboxIamModel, synthesizeControlPlane } from "../../sandbox/sandbox.js";
import { resolveIntrinsics } from "../../sandbox/state-machine-definitions.js";
import { scratchDir } from "../support.js";

const BUCKET = "rewind-sandbox";
const KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/";
const region = "us-east-1";

/**
 * The sandbox refuses what AWS refuses: each stand-in authorises every request against the
 * synthesized template (the caller's role policies and the resource's policy, conditions
 * included), with the caller known by its own credentials.
 */
describe("the sandbox's IAM, from the synthesized template", () => {
  const scratch = scratchDir("sandbox-iam");
  let synthesized: SynthesizedControlPlane;
  let keyArn: string;
  const silent = () => {};

  const iamFor = (edit?: (s: SynthesizedControlPlane) => void) => {
    const copy = structuredClone(synthesized);
    edit?.(copy);
    return new SandboxIam(sandboxIamModel(copy, BUCKET), silent);
  };
  const credentials = (principal: IamPrincipal) => ({
    accessKeyId: principal.accessKeyId,
    secretAccessKey: principal.secretAccessKey,
  });

  beforeAll(() => {
    const bundle = path.join(scratch.dir, "rewind-agent.mjs");
    writeFileSync(bundle, "// stand-in\n");
    synthesized = synthesizeControlPlane(scratch.dir, bundle);
    keyArn = `${KEY_ARN}${synthesized.keyLogicalId}`;
  }, 120_000);

  afterAll(() => scratch.remove());

  describe("KMS and Secrets Manager", () => {
    const started: { close(): void }[] = [];
    afterAll(() => {
      for (const server of started) server.close();
    });

    async function standIns(iam: SandboxIam) {
      const kms = new LocalKms([keyArn], iam);
      await kms.listen();
      const secrets = new LocalSecretsManager(iam, kms);
      await secrets.listen();
      started.push(kms, secrets);
      for (const cluster of ["orders", "billing"]) {
        secrets.define(
          `rewind/${cluster}/backup`,
          `arn:aws:secretsmanager:${region}:123456789012:secret:rewind/${cluster}/backup-Rw1nd0`,
          keyArn,
        );
        secrets.put(`rewind/${cluster}/backup`, { username: "rewind_backup", password: `${cluster}-pw` });
      }
      return { kms, secrets };
    }

    it("a host reads its own cluster's secret, and Secrets Manager's use of the key needs the host's kms:Decrypt", async () => {
      const iam = iamFor();
      const { secrets } = await standIns(iam);
      const host = iam.principalNamed("orders database hosts");
      const client = new SecretsManagerClient({
        region,
        endpoint: secrets.endpoint,
        credentials: credentials(host),
      });
      const read = await client.send(new GetSecretValueCommand({ SecretId: "rewind/orders/backup" }));
      expect(JSON.parse(read.SecretString!)).toEqual({ username: "rewind_backup", password: "orders-pw" });
      expect(read.VersionStages).toEqual(["AWSCURRENT"]);
      await expect(
        client.send(new GetSecretValueCommand({ SecretId: "rewind/billing/backup" })),
      ).rejects.toMatchObject({ name: "AccessDeniedException" });

      // Without the statement the policy lacked until the strict sandbox ran, every agent run
      // fails reading its database user: this is what the sandbox now catches before AWS does.
      const old = iamFor((s) => removeStatement(s.template, "ordersHostPolicy", "ClusterSecretsKey"));
      const { secrets: strict } = await standIns(old);
      const denied = new SecretsManagerClient({
        region,
        endpoint: strict.endpoint,
        credentials: credentials(old.principalNamed("orders database hosts")),
      });
      await expect(
        denied.send(new GetSecretValueCommand({ SecretId: "rewind/orders/backup" })),
      ).rejects.toMatchObject({
        name: "AccessDeniedException",
        message: expect.stringContaining(`may not kms:Decrypt on ${keyArn}`),
      });
    });

    it("serves the previous version by stage after a rotation", async () => {
      const { secrets } = await standIns(iamFor());
      secrets.put("rewind/orders/backup", { username: "rewind_backup", password: "rotated" });
      const client = new SecretsManagerClient({
        region,
        endpoint: secrets.endpoint,
        credentials: credentials(iamFor().principalNamed("orders database hosts")),
      });
      const previous = await client.send(
        new GetSecretValueCommand({ SecretId: "rewind/orders/backup", VersionStage: "AWSPREVIOUS" }),
      );
      expect(JSON.parse(previous.SecretString!).password).toBe("orders-pw");
      const current = await client.send(new GetSecretValueCommand({ SecretId: "rewind/orders/backup" }));
      expect(JSON.parse(current.SecretString!).password).toBe("rotated");
    });

    it("gives a host data keys only for its own cluster's encryption context, and binds them to it", async () => {
      const iam = iamFor();
      const { kms } = await standIns(iam);
      const host = new KMSClient({
        region,
        endpoint: kms.endpoint,
        credentials: credentials(iam.principalNamed("orders database hosts")),
      });
      const context = { cluster: "orders", backup: "b1" };
      const key = await host.send(
        new GenerateDataKeyCommand({ KeyId: keyArn, NumberOfBytes: 32, EncryptionContext: context }),
      );
      expect(key.KeyId).toBe(keyArn);
      const opened = await host.send(
        new DecryptCommand({ CiphertextBlob: key.CiphertextBlob, EncryptionContext: context, KeyId: keyArn }),
      );
      expect(Buffer.from(opened.Plaintext!)).toEqual(Buffer.from(key.Plaintext!));
      await expect(
        host.send(
          new DecryptCommand({
            CiphertextBlob: key.CiphertextBlob,
            EncryptionContext: { ...context, backup: "b2" },
          }),
        ),
      ).rejects.toMatchObject({ name: "InvalidCiphertextException" });
      await expect(
        host.send(
          new GenerateDataKeyCommand({
            KeyId: keyArn,
            NumberOfBytes: 32,
            EncryptionContext: { cluster: "billing" },
          }),
        ),
      ).rejects.toMatchObject({ name: "AccessDeniedException" });
      // The Lambdas read objects through S3 and never make data keys.
      const lambda = new KMSClient({
        region,
        endpoint: kms.endpoint,
        credentials: credentials(iam.principalNamed("Lambda verify")),
      });
      await expect(
        lambda.send(
          new GenerateDataKeyCommand({ KeyId: keyArn, NumberOfBytes: 32, EncryptionContext: context }),
        ),
      ).rejects.toMatchObject({ name: "AccessDeniedException" });
      // Nor can any Lambda unwrap a host's data key: their kms:Decrypt holds only through S3.
      for (const name of ["Lambda verify", "Lambda plan-restore", "Lambda retention"]) {
        const reader = new KMSClient({
          region,
          endpoint: kms.endpoint,
          credentials: credentials(iam.principalNamed(name)),
        });
        await expect(
          reader.send(
            new DecryptCommand({
              CiphertextBlob: key.CiphertextBlob,
              EncryptionContext: context,
              KeyId: keyArn,
            }),
          ),
          name,
        ).rejects.toMatchObject({ name: "AccessDeniedException" });
        expect(() =>
          kms.authorizeVia(iam.principalNamed(name), "kms:Decrypt", keyArn, `s3.${region}.amazonaws.com`, {
            "aws:s3:arn": `arn:aws:s3:::${BUCKET}`,
          }),
        ).not.toThrow();
      }
    });
  });

  describe("S3", () => {
    let s3: S3Server;
    const client = (principal: IamPrincipal) =>
      new S3Client({
        region,
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: credentials(principal),
        maxAttempts: 1,
      });
    let iam: SandboxIam;

    beforeAll(async () => {
      iam = iamFor();
      s3 = await S3Server.start({
        storageDir: path.join(scratch.dir, "s3"),
        buckets: [BUCKET],
        rules: {
          iam: iam.model,
          kmsKeyArn: keyArn,
          objectLock: { mode: "governance", days: 1 },
        },
        log: silent,
      });
    });
    afterAll(async () => {
      await s3?.stop();
    });

    it("lets a host write and list only its own cluster's prefix, never delete, and keeps other encryption out", async () => {
      const host = client(iam.principalNamed("orders database hosts"));
      await host.send(new PutObjectCommand({ Bucket: BUCKET, Key: "orders/a.json", Body: "{}" }));
      await host.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "orders/b.json",
          Body: "{}",
          ServerSideEncryption: "aws:kms",
          SSEKMSKeyId: keyArn,
        }),
      );
      const listed = await host.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "orders/" }));
      expect(listed.Contents?.map((o) => o.Key)).toEqual(["orders/a.json", "orders/b.json"]);
      for (const refused of [
        () => host.send(new PutObjectCommand({ Bucket: BUCKET, Key: "billing/a.json", Body: "{}" })),
        () => host.send(new ListObjectsV2Command({ Bucket: BUCKET })),
        () => host.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "billing/" })),
        () => host.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "orders/a.json" })),
        () =>
          host.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: "orders/c.json",
              Body: "{}",
              ServerSideEncryption: "AES256",
            }),
          ),
        () =>
          host.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: "orders/c.json",
              Body: "{}",
              ServerSideEncryption: "aws:kms",
              SSEKMSKeyId: `${KEY_ARN}someone-elses`,
            }),
          ),
      ]) {
        await expect(refused()).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
      }
    });

    it("answers a HEAD of a missing key with 403 to a host (no bucket-wide list) and 404 to retention", async () => {
      const host = client(iam.principalNamed("orders database hosts"));
      await expect(
        host.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "orders/missing.json" })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
      const retention = client(iam.principalNamed("Lambda retention"));
      await expect(
        retention.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "orders/missing.json" })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    });

    it("lets retention delete versions by id, never a locked one; governance yields only to a granted bypass", async () => {
      const operator = client(iam.principalNamed("sandbox operator"));
      const put = (key: string) =>
        operator.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "{}", ChecksumAlgorithm: "SHA256" }),
        );
      const { VersionId: locked } = await put("orders/lock/locked.json");
      const retention = client(iam.principalNamed("Lambda retention"));
      const deleteVersion = (who: S3Client, key: string, versionId: string | undefined, bypass = false) =>
        who.send(
          new DeleteObjectCommand({
            Bucket: BUCKET,
            Key: key,
            VersionId: versionId,
            ...(bypass ? { BypassGovernanceRetention: true } : {}),
          }),
        );
      await expect(deleteVersion(retention, "orders/lock/locked.json", locked)).rejects.toMatchObject({
        $metadata: { httpStatusCode: 403 },
      });
      await expect(deleteVersion(retention, "orders/lock/locked.json", locked, true)).rejects.toMatchObject({
        $metadata: { httpStatusCode: 403 },
      });
      // A plain delete (a delete marker that keeps the bytes) is not retention's to make.
      await expect(
        retention.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "orders/lock/locked.json" })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
      // The operator may do anything IAM allows: only the lock refuses it, until it asks to bypass.
      await expect(deleteVersion(operator, "orders/lock/locked.json", locked)).rejects.toMatchObject({
        $metadata: { httpStatusCode: 403 },
      });
      await deleteVersion(operator, "orders/lock/locked.json", locked, true);
      // Once the lock lapses, retention deletes the version for good.
      const { VersionId: expiring } = await put("orders/lock/expired.json");
      await s3.advanceClock(86_400 + 60);
      await deleteVersion(retention, "orders/lock/expired.json", expiring);
      expect((await s3.storage(BUCKET, "orders/lock/")).versions).toBe(0);
    });

    it("refuses an upload without a checksum under Object Lock, as S3 does; the binlog index carries one", async () => {
      // The agent's client adds checksums only where an API requires them, as a signed
      // x-amz-content-sha256 alone does not satisfy Object Lock.
      const host = new S3Client({
        region,
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: credentials(iam.principalNamed("orders database hosts")),
        requestChecksumCalculation: "WHEN_REQUIRED",
        maxAttempts: 1,
      });
      await expect(
        host.send(new PutObjectCommand({ Bucket: BUCKET, Key: "orders/unchecked.json", Body: "{}" })),
      ).rejects.toMatchObject({ name: "InvalidRequest" });
      await host.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: "orders/checked.json",
          Body: "{}",
          ChecksumSHA256: createHash("sha256").update("{}").digest("base64"),
        }),
      );
      const manifest = {
        engine: "mariadb" as const,
        source: "1-db1",
        file: "mariadb-bin.000001",
        previousFile: null,
        size: 100,
        sha256: "a".repeat(64),
        storedSha256: "b".repeat(64),
        firstEventTime: null,
        lastEventTime: null,
        lastCommitTime: null,
        gtidsBefore: "",
        gtidsAdded: "0-1-5",
        firstGtid: "0-1-1",
        lastGtid: "0-1-5",
        transactions: 5,
        shippedAt: new Date().toISOString(),
      } as unknown as BinlogManifest;
      await addToBinlogIndex(host, BUCKET, { cluster: "orders" }, "1-db1", [manifest]);
    });

    it("refuses a caller it does not know", async () => {
      const stranger = new S3Client({
        region,
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: "AKIASTRANGER", secretAccessKey: "x" },
        maxAttempts: 1,
      });
      await expect(
        stranger.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "orders/" })),
      ).rejects.toMatchObject({
        name: "InvalidAccessKeyId",
      });
    });

    it("counts every request by API", async () => {
      const counts = await s3.requestCounts();
      expect(counts["S3 PutObject"]).toBeGreaterThanOrEqual(4);
      expect(counts["S3 HeadObject"]).toBe(2);
    });
  });

  describe("SSM and Step Functions", () => {
    it("lets select-source send the agent document only to this deployment's hosts (tagged rewind:cluster)", async () => {
      const iam = iamFor();
      // A host of this deployment, one of another deployment (staging), one untagged.
      const tagsOf: Record<string, string>[] = [
        { "rewind:cluster": "orders" },
        { "staging:cluster": "orders" },
        {},
      ];
      const hosts = tagsOf.map((tags, i) => ({
        instanceId: `i-00000000000000${i}0a`,
        name: `db-${i}`,
        tags,
        configFile: path.join(scratch.dir, `host-${i}.json`),
        dir: path.join(scratch.dir, `host-${i}`),
      }));
      const bundle = path.join(scratch.dir, "echo-agent.mjs");
      writeFileSync(bundle, "console.log(JSON.stringify({ ok: true }));\n");
      const ssm = new LocalSsm(agentDocuments(synthesized.template), hosts, bundle, {}, { iam });
      await ssm.listen();
      try {
        const client = new SSMClient({
          region,
          endpoint: ssm.endpoint,
          credentials: credentials(iam.principalNamed("Lambda select-source")),
        });
        const send = (instanceId: string) =>
          client.send(
            new SendCommandCommand({
              DocumentName: "Rewind-RunAgent",
              InstanceIds: [instanceId],
              Parameters: { Command: ["status"] },
            }),
          );
        await expect(send(hosts[0]!.instanceId)).resolves.toMatchObject({ Command: { Status: "Pending" } });
        for (const other of hosts.slice(1)) {
          await expect(send(other.instanceId)).rejects.toMatchObject({
            name: "AccessDeniedException",
            message: expect.stringContaining(
              `may not ssm:SendCommand on arn:aws:ec2:us-east-1:123456789012:instance/${other.instanceId}`,
            ),
          });
        }
      } finally {
        ssm.close();
      }
    });

    it("delivers scheduled output to CloudWatch Logs only with the instance role's logs permissions", async () => {
      const schedule = Object.values(synthesized.template.Resources).find(
        (r) =>
          r.Type === "AWS::Scheduler::Schedule" && String(r.Properties?.Name).startsWith("rewind-binlogs-"),
      )!;
      const input = JSON.parse(
        String(
          (resolveIntrinsics(schedule.Properties!.Target, synthesized.template) as { Input: string }).Input,
        ),
      );
      expect(input.CloudWatchOutputConfig.CloudWatchOutputEnabled).toBe(true);
      const bundle = path.join(scratch.dir, "quiet-agent.mjs");
      writeFileSync(bundle, "console.log(JSON.stringify({ ok: true }));\n");
      // The watchdog runs the installed agent (Rewind-RunInstalledAgent): install left it there.
      const installed = path.join(hostRoot({ dir: path.join(scratch.dir, "host-logs") }), INSTALLED_AGENT);
      mkdirSync(path.dirname(installed), { recursive: true });
      copyFileSync(bundle, installed);
      const outputOf = async (iam: SandboxIam) => {
        const host = iam.principalNamed("orders database hosts");
        const ssm = new LocalSsm(
          agentDocuments(synthesized.template),
          [
            {
              instanceId: "i-0000000000000009a",
              name: "db-orders",
              tags: { "rewind:cluster": "orders" },
              configFile: path.join(scratch.dir, "orders.json"),
              dir: path.join(scratch.dir, "host-logs"),
              environment: {
                AWS_ACCESS_KEY_ID: host.accessKeyId,
                AWS_SECRET_ACCESS_KEY: host.secretAccessKey,
              },
            },
          ],
          bundle,
          {},
          { iam },
        );
        const { invocations } = ssm.sendCommand(input, iam.principalNamed("EventBridge Scheduler"));
        await invocations[0]!.done;
        await new Promise((resolve) => setImmediate(resolve));
        return invocations[0]!.cloudWatchOutput;
      };
      expect(await outputOf(iamFor())).toBe("delivered");
      expect(
        await outputOf(iamFor((s) => removeStatement(s.template, "ordersHostPolicy", "AgentOutput"))),
      ).toBe("denied");
    });

    it("accepts only live task tokens, signed by a host", async () => {
      const iam = iamFor();
      const callbacks = new TaskCallbacks(iam);
      const endpoint = await callbacks.listen();
      try {
        const host = new SFNClient({
          region,
          endpoint,
          credentials: credentials(iam.principalNamed("orders database hosts")),
        });
        await expect(
          host.send(new SendTaskHeartbeatCommand({ taskToken: "never-issued" })),
        ).rejects.toMatchObject({
          name: "InvalidToken",
        });
        // A real missing heartbeat: the task times out, and a heartbeat afterwards fails as in AWS.
        callbacks.expect("t1");
        const outcome = await callbacks.wait("t1", 1, new Promise(() => {}));
        expect(outcome.kind).toBe("heartbeat-timeout");
        await expect(host.send(new SendTaskHeartbeatCommand({ taskToken: "t1" }))).rejects.toMatchObject({
          name: "TaskTimedOut",
        });
        callbacks.expect("t2");
        const waiting = callbacks.wait("t2", 60, new Promise(() => {}));
        await host.send(new SendTaskSuccessCommand({ taskToken: "t2", output: "{}" }));
        expect((await waiting).kind).toBe("success");
        await expect(
          host.send(new SendTaskSuccessCommand({ taskToken: "t2", output: "{}" })),
        ).rejects.toMatchObject({ name: "TaskTimedOut" });
        // Only the hosts report to Step Functions.
        const lambda = new SFNClient({
          region,
          endpoint,
          credentials: credentials(iam.principalNamed("Lambda verify")),
        });
        callbacks.expect("t3");
        await expect(lambda.send(new SendTaskHeartbeatCommand({ taskToken: "t3" }))).rejects.toMatchObject({
          name: "AccessDeniedException",
        });
      } finally {
        callbacks.close();
      }
    });
  });
});
