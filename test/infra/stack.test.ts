import { readFileSync, writeFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { afterAll, describe, expect, it } from "vitest";
import { AGENT_DOCUMENT_PARAMETERS } from "../../infra/agent-document.js";
import { parseRewindConfig } from "../../infra/config.js";
import { run } from "../../infra/local/processes.js";
import { RewindStack } from "../../infra/rewind-stack.js";
import { scratchDir } from "../support.js";

const scratch = scratchDir("infra");
const agentBundle = `${scratch.dir}/rewind-agent.mjs`;
writeFileSync(agentBundle, "// agent bundle stand-in for template tests\n");

const minimal = { clusters: [{ name: "orders", engine: "mariadb" }] };

function template(raw: unknown = minimal): Template {
  const stack = new RewindStack(new App(), "Rewind", { config: parseRewindConfig(raw, "test"), agentBundle });
  return Template.fromStack(stack);
}

describe("the Rewind stack", () => {
  afterAll(() => scratch.remove());

  it("stores backups in a TLS-only, SSE-KMS, versioned bucket with public access blocked and stale uploads aborted", () => {
    const t = template();
    t.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: "aws:kms" }) }),
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: "Enabled" },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 }, Status: "Enabled" }),
        ]),
      },
    });
    t.hasResourceProperties("AWS::S3::BucketPolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
    t.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
  });

  it("gives each cluster's hosts only their own prefix and secrets, and no wildcard actions anywhere", () => {
    const t = template({
      clusters: [
        { name: "orders", engine: "mariadb" },
        { name: "billing", engine: "mysql" },
      ],
    });
    const policies = t.findResources("AWS::IAM::ManagedPolicy");
    expect(Object.keys(policies)).toHaveLength(2);
    const text = JSON.stringify(policies);
    expect(text).toContain("/orders/*");
    expect(text).toContain("secret:rewind/orders/*");
    expect(text).toContain("secret:rewind/billing/*");
    type Statement = { Effect: string; Action: string | string[] };
    type Resource = {
      Properties?: { PolicyDocument?: { Statement: Statement[] }; KeyPolicy?: { Statement: Statement[] } };
    };
    for (const resource of Object.values(t.toJSON().Resources) as Resource[]) {
      const statements = resource.Properties?.PolicyDocument?.Statement ?? [];
      // A Deny of s3:* (the TLS-only bucket policy) narrows access; only Allows must be narrow.
      for (const statement of statements.filter((candidate) => candidate.Effect === "Allow")) {
        for (const action of [statement.Action].flat()) expect(action).not.toMatch(/(^\*$|:\*$)/);
      }
    }
  });

  it("turns on Object Lock and storage-class transitions only when configured", () => {
    template().hasResourceProperties("AWS::S3::Bucket", { ObjectLockEnabled: Match.absent() });
    template({
      ...minimal,
      bucket: { objectLockDays: 30, infrequentAccessAfterDays: 30 },
    }).hasResourceProperties("AWS::S3::Bucket", {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: "Enabled",
        Rule: { DefaultRetention: { Mode: "COMPLIANCE", Days: 30 } },
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Transitions: [{ StorageClass: "STANDARD_IA", TransitionInDays: 30 }] }),
        ]),
      },
    });
  });

  it("defines Rewind-RunAgent with every parameter constrained and passed as an environment variable", () => {
    const documents = template().findResources("AWS::SSM::Document");
    interface DocumentContent {
      parameters: Record<string, { allowedPattern: string; interpolationType: string }>;
      mainSteps: { action: string }[];
    }
    const [document] = Object.values(documents) as {
      Properties: { Name: string; Content: DocumentContent };
    }[];
    expect(document!.Properties.Name).toBe("Rewind-RunAgent");
    const parameters = document!.Properties.Content.parameters;
    expect(Object.keys(parameters).sort()).toEqual(Object.keys(AGENT_DOCUMENT_PARAMETERS).sort());
    for (const parameter of Object.values(parameters)) {
      expect(parameter.interpolationType).toBe("ENV_VAR");
      expect(parameter.allowedPattern).toMatch(/^\^.*\$$/);
    }
    expect(document!.Properties.Content.mainSteps.map((step) => step.action)).toEqual([
      "aws:downloadContent",
      "aws:runShellScript",
    ]);
  });

  it.each([
    ["Command", "backup; rm -rf /"],
    ["Until", "$(reboot)"],
    ["BackupId", "20261121T031500Z-full-db1`id`"],
    ["Datadir", "/var/lib/mysql && halt"],
    ["Flags", "--flush --config /tmp/evil.json"],
    ["TaskToken", "token'; curl evil"],
  ] as const)("the %s pattern refuses shell: %s", (name, value) => {
    expect(new RegExp(AGENT_DOCUMENT_PARAMETERS[name].pattern).test(value)).toBe(false);
  });

  it("the patterns accept what operators and the state machines send", () => {
    const accepts = (name: keyof typeof AGENT_DOCUMENT_PARAMETERS, value: string) =>
      expect(new RegExp(AGENT_DOCUMENT_PARAMETERS[name].pattern).test(value), `${name}=${value}`).toBe(true);
    accepts("Command", "binlog-push");
    accepts("Until", "2026-11-21T10:15:00Z");
    accepts("Until", "0-1-1042");
    accepts("BackupId", "20261121T031500Z-full-db-orders-1");
    accepts("Datadir", "/var/lib/mysql");
    accepts("Flags", "--flush");
    accepts("Flags", "--move-aside --dry-run");
    accepts("TaskToken", "AQCEAAAAKgAAAAMAAAAAAAAAAeMTb1Y+abc/def==");
  });
});

describe("cdk synth", () => {
  it("works offline: no AWS credentials, no Docker, no lookups", async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("AWS_")));
    const out = `${scratch.dir}/cdk.out`;
    await run("npx", ["cdk", "synth", "--quiet", "--output", out], {
      env: { ...env, AWS_EC2_METADATA_DISABLED: "true", CDK_DISABLE_VERSION_CHECK: "1" },
    });
    const synthesized = JSON.parse(readFileSync(`${out}/Rewind.template.json`, "utf8"));
    expect(Object.values(synthesized.Resources).map((r) => (r as { Type: string }).Type)).toEqual(
      expect.arrayContaining(["AWS::S3::Bucket", "AWS::KMS::Key", "AWS::SSM::Document"]),
    );
  }, 180_000);
});

describe("the Rewind config", () => {
  it.each([
    [{ clusters: [] }, /clusters: list at least one cluster/],
    [{ clusters: [{ name: "Orders", engine: "mariadb" }] }, /clusters.0.name: cluster name "Orders" must be/],
    [
      {
        clusters: [
          { name: "a", engine: "mariadb" },
          { name: "a", engine: "mysql" },
        ],
      },
      /clusters: cluster "a" is listed twice/,
    ],
    [
      { ...minimal, schedules: { full: "every night" } },
      /schedules.full: an EventBridge Scheduler expression/,
    ],
    [{ ...minimal, retention: { fullBackups: 0 } }, /retention.fullBackups: keep at least one full backup/],
    [
      { ...minimal, bucket: { objectLockDays: 3 } },
      /bucket.objectLockDays: Object Lock \(3 days\) must cover the PITR window/,
    ],
    [{ ...minimal, alarms: { notificationEmail: "dba at example" } }, /alarms.notificationEmail/],
    [{ ...minimal, surprise: true }, /Unrecognized key: "surprise"/],
  ])("a bad config fails synth naming the field and the fix (%#)", (raw, message) => {
    expect(() => parseRewindConfig(raw, "rewind.config.json")).toThrow(message);
  });

  it("the example config in the repo is valid", async () => {
    const { loadRewindConfig } = await import("../../infra/config.js");
    expect(loadRewindConfig("rewind.config.example.json").clusters[0]!.name).toBe("orders");
  });
});
