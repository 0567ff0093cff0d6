import { readdirSync, readFileSync } from "node:fs";
import { App, Validations } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, describe, expect, it } from "vitest";
import {
  AGENT_DOCUMENT_PARAMETERS,
  INSTALLED_AGENT_DOCUMENT_PARAMETERS,
} from "../../infra/agent-document.js";
import { parseRewindConfig } from "../../infra/config.js";
import type { RewindStack } from "../../infra/rewind-stack.js";
import { ROTATION_PARAMETERS } from "../../lambdas/lib/rotate-accounts.js";
import { run } from "../../sandbox/processes.js";
import {
  resolveIntrinsics,
  stateMachineDefinitions,
  type Template as TemplateJson,
} from "../../sandbox/state-machine-definitions.js";
import { scratchDir } from "../support.js";
import { MINIMAL_CONFIG as minimal, removeSynthScratch, synthStack, synthTemplate } from "./synth.js";

const scratch = scratchDir("synth");

function template(raw: unknown = minimal): Template {
  return synthTemplate(raw);
}

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
type Resource = {
  Type: string;
  Properties?: {
    PolicyDocument?: { Statement: Statement[] };
    Roles?: { Ref: string }[];
    [key: string]: unknown;
  };
};

/** Every Allow statement of the template's IAM policies, with the policy's logical id. */
function allowStatements(t: Template): { policy: string; statement: Statement; actions: string[] }[] {
  return Object.entries(t.toJSON().Resources as Record<string, Resource>)
    .filter(
      ([, resource]) => resource.Type === "AWS::IAM::Policy" || resource.Type === "AWS::IAM::ManagedPolicy",
    )
    .flatMap(([policy, resource]) =>
      (resource.Properties?.PolicyDocument?.Statement ?? [])
        .filter((statement) => statement.Effect === "Allow")
        .map((statement) => ({ policy, statement, actions: [statement.Action].flat() })),
    );
}

/** Actions AWS offers no resource-level permission for: `Resource: "*"` is the only way to grant them. */
const NO_RESOURCE_LEVEL = new Set([
  "states:SendTaskSuccess",
  "states:SendTaskFailure",
  "states:SendTaskHeartbeat",
  "ssm:DescribeInstanceInformation",
  "ssm:GetCommandInvocation",
  "secretsmanager:GetRandomPassword",
  "xray:PutTraceSegments",
  "xray:PutTelemetryRecords",
  "xray:GetSamplingRules",
  "xray:GetSamplingTargets",
  "logs:CreateLogDelivery",
  "logs:GetLogDelivery",
  "logs:UpdateLogDelivery",
  "logs:DeleteLogDelivery",
  "logs:ListLogDeliveries",
  "logs:PutResourcePolicy",
  "logs:DescribeResourcePolicies",
  "logs:DescribeLogGroups",
]);

afterAll(() => {
  scratch.remove();
  removeSynthScratch();
});

describe("the Rewind stack", () => {
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
    for (const { policy, statement, actions } of allowStatements(t)) {
      for (const action of actions) expect(action, `${policy}: ${action}`).not.toContain("*");
      if (statement.Resource === "*") {
        for (const action of actions)
          expect(NO_RESOURCE_LEVEL.has(action), `${policy}: ${action} on *`).toBe(true);
      }
    }
  });

  it("lets the SSM Agent on the hosts stream the agent's output to its log group, and only to it", () => {
    const t = template();
    const [policy] = Object.values(t.findResources("AWS::IAM::ManagedPolicy")) as {
      Properties: { PolicyDocument: { Statement: { Sid: string; Action: string[]; Resource: unknown }[] } };
    }[];
    const statements = Object.fromEntries(
      policy!.Properties.PolicyDocument.Statement.map((statement) => [statement.Sid, statement]),
    );
    expect(statements.AgentOutput!.Action).toEqual([
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]);
    const group = Object.keys(t.findResources("AWS::Logs::LogGroup")).find((id) => id.includes("AgentLogs"));
    expect(JSON.stringify(statements.AgentOutput!.Resource)).toBe(
      JSON.stringify({ "Fn::GetAtt": [group, "Arn"] }),
    );
    expect(statements.FindAgentOutputGroup!.Action).toBe("logs:DescribeLogGroups");
  });

  it("lets a host use the key only for its own cluster's data keys, through S3, and for its own cluster's secrets; never kms:Encrypt", () => {
    const t = template();
    const [policy] = Object.values(t.findResources("AWS::IAM::ManagedPolicy")) as {
      Properties: { PolicyDocument: { Statement: { Sid: string; Action: string[]; Condition?: unknown }[] } };
    }[];
    const statements = policy!.Properties.PolicyDocument.Statement;
    const kmsStatements = statements.filter((statement) =>
      [statement.Action].flat().some((action) => action.startsWith("kms:")),
    );
    expect(kmsStatements.map((statement) => [statement.Sid, statement.Action, statement.Condition])).toEqual([
      [
        "DataKeys",
        ["kms:GenerateDataKey", "kms:Decrypt"],
        { StringEquals: { "kms:EncryptionContext:cluster": "orders" } },
      ],
      [
        "BucketEncryption",
        ["kms:GenerateDataKey", "kms:Decrypt"],
        {
          StringEquals: {
            "kms:ViaService": { "Fn::Join": ["", ["s3.", { Ref: "AWS::Region" }, ".amazonaws.com"]] },
          },
        },
      ],
      [
        "ClusterSecretsKey",
        "kms:Decrypt",
        {
          StringEquals: {
            "kms:ViaService": {
              "Fn::Join": ["", ["secretsmanager.", { Ref: "AWS::Region" }, ".amazonaws.com"]],
            },
          },
          StringLike: {
            "kms:EncryptionContext:SecretARN": {
              "Fn::Join": [
                "",
                [
                  "arn:",
                  { Ref: "AWS::Partition" },
                  ":secretsmanager:",
                  { Ref: "AWS::Region" },
                  ":",
                  { Ref: "AWS::AccountId" },
                  ":secret:rewind/orders/*",
                ],
              ],
            },
          },
        },
      ],
    ]);
    expect(statements.flatMap((statement) => [statement.Action].flat())).not.toContain("kms:Encrypt");
  });

  it("refuses objects under other encryption or customer keys, and lets only this account's alarms use the topic key", () => {
    const t = template();
    const bucketPolicy = Object.values(t.findResources("AWS::S3::BucketPolicy")).find((policy) =>
      JSON.stringify(policy).includes("DenyOtherEncryption"),
    ) as {
      Properties: { PolicyDocument: { Statement: { Sid?: string; Effect: string; Condition?: unknown }[] } };
    };
    const denies = Object.fromEntries(
      bucketPolicy.Properties.PolicyDocument.Statement.filter((statement) => statement.Effect === "Deny").map(
        (statement) => [statement.Sid ?? "", statement.Condition],
      ),
    );
    // What these conditions allow and refuse is evaluated in sandbox-iam.test.ts.
    expect(denies.DenyOtherEncryption).toEqual({
      Null: { "s3:x-amz-server-side-encryption": "false" },
      StringNotEquals: { "s3:x-amz-server-side-encryption": "aws:kms" },
    });
    expect(Object.keys((denies.DenyOtherKeys as { StringNotEquals: object }).StringNotEquals)).toEqual([
      "s3:x-amz-server-side-encryption-aws-kms-key-id",
    ]);
    expect(denies.DenyCustomerKeys).toEqual({
      Null: { "s3:x-amz-server-side-encryption-customer-algorithm": "false" },
    });
    expect(JSON.stringify(t.findResources("AWS::KMS::Key"))).toContain(
      '"Condition":{"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"}}}',
    );
  });

  it("lets only the hosts read secrets and the rotation function rotate them, and only the roles that handle objects, messages or secrets use a key", () => {
    const t = template();
    const grants = allowStatements(t);
    const secretReaders = grants.filter(({ actions }) =>
      actions.some((a) => a.startsWith("secretsmanager:")),
    );
    expect(
      [...new Set(secretReaders.map(({ policy }) => policy.replace(/[0-9A-F]{8}$/, "")))].sort(),
    ).toEqual(["FunctionsRotateAccountsRoleDefaultPolicy", "ordersHostPolicy"]);
    // The hosts name their cluster's own secrets; the rotation function the deployment's accounts
    // secrets by one pattern (its policy does not grow with the fleet).
    for (const { policy, statement } of secretReaders)
      expect(JSON.stringify(statement.Resource), policy).toMatch(
        /secret:rewind\/orders\/\*|secret:rewind\/\*\/accounts-\*|"\*"/,
      );
    // The rotation function reaches only the accounts secrets, and their key only through Secrets Manager.
    const rotator = secretReaders.filter(({ policy }) => policy.startsWith("FunctionsRotateAccounts"));
    expect(JSON.stringify(rotator)).toContain("secret:rewind/*/accounts-*");
    expect(
      JSON.stringify(
        grants.filter(
          ({ policy, actions }) =>
            policy.startsWith("FunctionsRotateAccounts") && actions.some((a) => a.startsWith("kms:")),
        ),
      ),
    ).toContain("secretsmanager.");
    const keyUsers = new Set(
      grants.filter(({ actions }) => actions.some((a) => a.startsWith("kms:"))).map(({ policy }) => policy),
    );
    expect([...keyUsers].map((policy) => policy.replace(/[0-9A-F]{8}$/, "")).sort()).toEqual([
      "FunctionsNotifyRoleDefaultPolicy",
      "FunctionsPlanRestoreRoleDefaultPolicy",
      "FunctionsRetentionRoleDefaultPolicy",
      "FunctionsRotateAccountsRoleDefaultPolicy",
      "FunctionsVerifyRoleDefaultPolicy",
      "ordersHostPolicy",
    ]);
    // Only retention deletes, and only object versions by id (a compromised host cannot destroy
    // backups; a plain delete would leave the bytes behind a marker); only plan-restore writes,
    // and only restore plans.
    const deleters = grants.filter(({ actions }) => actions.some((action) => action.startsWith("s3:Delete")));
    expect(deleters.map(({ policy }) => policy.replace(/[0-9A-F]{8}$/, "")).sort()).toEqual([
      "FunctionsRetentionRoleDefaultPolicy",
    ]);
    expect(deleters.flatMap(({ actions }) => actions)).toEqual(["s3:DeleteObjectVersion"]);
    const writers = grants.filter(
      ({ policy, actions }) => actions.includes("s3:PutObject") && policy.startsWith("Functions"),
    );
    expect(JSON.stringify(writers.map(({ statement }) => statement.Resource))).toContain("/*/restores/*");
    // Agent commands go only to this deployment's hosts: those that carry its tag (whatever the
    // cluster; the host refuses another cluster's request), a condition that does not grow with
    // the fleet.
    const senders = grants.filter(({ actions }) => actions.includes("ssm:SendCommand"));
    for (const { statement } of senders) {
      const resource = JSON.stringify(statement.Resource);
      if (resource.includes(":instance/")) {
        expect(statement.Condition).toEqual({ StringLike: { "ssm:resourceTag/rewind:cluster": "*" } });
      } else {
        // The state machines' tasks send Rewind-RunAgent; the schedules only the watchdog's document.
        expect(resource).toMatch(/:document\/Rewind-Run(Installed)?Agent"/);
      }
    }
    const scheduler = senders.find(
      ({ policy, statement }) =>
        policy.startsWith("SchedulesRole") && !JSON.stringify(statement.Resource).includes(":instance/"),
    );
    expect(JSON.stringify(scheduler!.statement.Resource)).toContain(":document/Rewind-RunInstalledAgent");
    // One secret per cluster ($0.40 a month) holds every account: usernames and a generated seed.
    t.resourceCountIs("AWS::SecretsManager::Secret", 1);
    t.hasResource("AWS::SecretsManager::Secret", {
      DeletionPolicy: "Retain",
      Properties: {
        Name: "rewind/orders/accounts",
        KmsKeyId: Match.anyValue(),
        GenerateSecretString: Match.objectLike({
          GenerateStringKey: "seed",
          SecretStringTemplate: JSON.stringify({
            backup: { username: "rewind_backup" },
            replication: { username: "rewind_repl" },
            admin: { username: "rewind_admin" },
          }),
        }),
      },
    });
    // Rotated by the rotation function every 30 days, never at deploy (the hosts come later).
    t.resourceCountIs("AWS::SecretsManager::RotationSchedule", 1);
    t.hasResourceProperties("AWS::SecretsManager::RotationSchedule", {
      RotationLambdaARN: Match.anyValue(),
      RotateImmediatelyOnUpdate: false,
    });
    const rotation = JSON.stringify(t.findResources("AWS::SecretsManager::RotationSchedule"));
    expect(rotation).toMatch(/30 days|"AutomaticallyAfterDays":30/);
  });

  it("runs the Lambdas on Node 22, ARM64, with their own log groups", () => {
    const t = template();
    const functions = Object.values(t.findResources("AWS::Lambda::Function")) as {
      Properties: {
        Runtime: string;
        Architectures: string[];
        Environment: { Variables: Record<string, unknown> };
      };
    }[];
    expect(functions).toHaveLength(6);
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe("nodejs22.x");
      expect(fn.Properties.Architectures).toEqual(["arm64"]);
      // Each cluster's settings are an SSM parameter (test/infra/lambda-settings-contract.test.ts).
      expect(fn.Properties.Environment.Variables.REWIND_CLUSTER_PARAMETERS).toBe("/rewind/clusters/");
    }
  });

  it("keeps task tokens out of the state machines' logs", () => {
    const machines = Object.values(template().findResources("AWS::StepFunctions::StateMachine")) as {
      Properties: { LoggingConfiguration: { IncludeExecutionData: boolean; Level: string } };
    }[];
    expect(machines).toHaveLength(3);
    for (const machine of machines) {
      expect(machine.Properties.LoggingConfiguration).toMatchObject({
        IncludeExecutionData: false,
        Level: "ALL",
      });
    }
  });

  it("schedules full backups and drills on the state machines, retention on its Lambda, and binlog shipping straight to the tagged hosts", () => {
    const t = template({
      ...minimal,
      schedules: {
        full: "cron(15 3 * * ? *)",
        incremental: "cron(15 9,15,21 * * ? *)",
        drill: "cron(0 6 ? * SUN *)",
        binlogIntervalMinutes: 2,
        timeZone: "Europe/Berlin",
      },
    });
    const schedules = Object.values(t.findResources("AWS::Scheduler::Schedule")) as {
      Properties: {
        Name: string;
        ScheduleExpression: string;
        ScheduleExpressionTimezone: string;
        FlexibleTimeWindow: { Mode: string; MaximumWindowInMinutes?: number };
        Target: { Arn: unknown; Input: string; DeadLetterConfig: { Arn: unknown }; RetryPolicy: unknown };
      };
    }[];
    // Inputs that name other resources are Fn::Join expressions until deployed.
    const json = t.toJSON() as TemplateJson;
    const byName = Object.fromEntries(
      schedules.map((s) => [
        s.Properties.Name,
        {
          ...s.Properties,
          Target: {
            ...s.Properties.Target,
            Input: resolveIntrinsics(s.Properties.Target.Input, json) as string,
          },
        },
      ]),
    );
    expect(Object.keys(byName).sort()).toEqual([
      "rewind-binlogs-orders",
      "rewind-drill-orders",
      "rewind-expire-orders",
      "rewind-full-orders",
      "rewind-incr-orders",
    ]);
    for (const schedule of Object.values(byName)) {
      expect(schedule.ScheduleExpressionTimezone).toBe("Europe/Berlin");
      expect(schedule.Target.DeadLetterConfig.Arn).toEqual({
        "Fn::GetAtt": [expect.stringMatching(/^SchedulesDeadLetters/), "Arn"],
      });
    }
    // A fleet's backups, drills and retention spread over 15 minutes (schedules.spreadMinutes);
    // the watchdog runs on the minute.
    for (const name of ["rewind-full-orders", "rewind-drill-orders", "rewind-expire-orders"])
      expect(byName[name]!.FlexibleTimeWindow, name).toEqual({
        Mode: "FLEXIBLE",
        MaximumWindowInMinutes: 15,
      });
    expect(byName["rewind-binlogs-orders"]!.FlexibleTimeWindow).toEqual({ Mode: "OFF" });
    const exact = template({ ...minimal, schedules: { spreadMinutes: 0 } });
    for (const schedule of Object.values(exact.findResources("AWS::Scheduler::Schedule")))
      expect(schedule.Properties.FlexibleTimeWindow).toEqual({ Mode: "OFF" });
    const full = byName["rewind-full-orders"]!;
    expect(full.ScheduleExpression).toBe("cron(15 3 * * ? *)");
    expect(JSON.parse(full.Target.Input)).toEqual({ cluster: "orders", type: "full" });
    expect(full.Target.Arn).toEqual({ Ref: expect.stringMatching(/^BackupStateMachine/) });
    // Incrementals go through the same Backup state machine, with the type.
    const incremental = byName["rewind-incr-orders"]!;
    expect(incremental.ScheduleExpression).toBe("cron(15 9,15,21 * * ? *)");
    expect(JSON.parse(incremental.Target.Input)).toEqual({ cluster: "orders", type: "incremental" });
    expect(incremental.Target.Arn).toEqual(full.Target.Arn);
    expect(JSON.parse(byName["rewind-drill-orders"]!.Target.Input)).toEqual({ cluster: "orders" });
    // Retention is off the backup's success path: its own daily schedule invokes its Lambda.
    const expire = byName["rewind-expire-orders"]!;
    expect(expire.ScheduleExpression).toBe("cron(45 4 * * ? *)");
    expect(JSON.parse(expire.Target.Input)).toEqual({ cluster: "orders" });
    expect(expire.Target.Arn).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^FunctionsRetention/), "Arn"],
    });
    const binlogs = byName["rewind-binlogs-orders"]!;
    expect(binlogs.ScheduleExpression).toBe("rate(2 minutes)");
    expect(JSON.stringify(binlogs.Target.Arn)).toContain(":scheduler:::aws-sdk:ssm:sendCommand");
    // The per-minute watchdog runs the installed agent: nothing is downloaded per run.
    expect(JSON.parse(binlogs.Target.Input)).toMatchObject({
      DocumentName: "Rewind-RunInstalledAgent",
      Targets: [{ Key: "tag:rewind:cluster", Values: ["orders"] }],
      Parameters: { Command: ["binlog-push"] },
      CloudWatchOutputConfig: { CloudWatchOutputEnabled: true },
    });
    // Every document parameter a schedule sends passes the document's own pattern.
    for (const [name, [value]] of Object.entries(
      JSON.parse(binlogs.Target.Input).Parameters as Record<string, string[]>,
    )) {
      const pattern =
        INSTALLED_AGENT_DOCUMENT_PARAMETERS[name as keyof typeof INSTALLED_AGENT_DOCUMENT_PARAMETERS].pattern;
      expect(new RegExp(pattern).test(value!), `${name}=${value}`).toBe(true);
    }
  });

  it("alarms to the topic on a missing backup, binlog lag above the RPO, a failed drill, failed executions and schedule errors", () => {
    const t = template({
      ...minimal,
      alarms: { rpoSeconds: 20, hoursWithoutBackup: 30, notificationEmail: "dba@example.com" },
    });
    const alarms = Object.values(t.findResources("AWS::CloudWatch::Alarm")) as {
      Properties: {
        MetricName?: string;
        Namespace?: string;
        Threshold: number;
        EvaluationPeriods: number;
        TreatMissingData: string;
        AlarmActions: unknown[];
      };
    }[];
    const named = (metric: string) => alarms.filter((alarm) => alarm.Properties.MetricName === metric);
    expect(named("BackupSucceeded")[0]!.Properties).toMatchObject({
      Namespace: "Rewind",
      EvaluationPeriods: 30,
      TreatMissingData: "breaching",
    });
    expect(named("RestorableLagSeconds")[0]!.Properties).toMatchObject({
      Threshold: 20,
      TreatMissingData: "breaching",
    });
    expect(named("DrillFailed")).toHaveLength(1);
    // A failed retention run (its own schedule) shows in the Lambda's errors.
    expect(named("Errors")).toHaveLength(1);
    expect(named("ChunkOnlyBinlogSeconds")[0]!.Properties).toMatchObject({
      Threshold: 3600,
      TreatMissingData: "notBreaching",
    });
    expect(named("ExecutionsFailed")).toHaveLength(3);
    expect(named("TargetErrorCount")).toHaveLength(1);
    expect(named("ApproximateNumberOfMessagesVisible")).toHaveLength(1);
    for (const alarm of alarms)
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^MonitoringTopic/) }]);
    t.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "dba@example.com" });
    t.hasResourceProperties("AWS::Logs::MetricFilter", {
      MetricTransformations: [
        Match.objectLike({
          MetricName: "RestorableLagSeconds",
          MetricValue: "$.result.lagSeconds",
          Dimensions: [{ Key: "Cluster", Value: "$.cluster" }],
        }),
      ],
    });
    // Published only while closed files are held as chunks: no metric-hours billed otherwise.
    t.hasResourceProperties("AWS::Logs::MetricFilter", {
      FilterPattern: Match.stringLikeRegexp(/\$\.result\.chunkOnlySeconds > 0/.source),
      MetricTransformations: [
        Match.objectLike({ MetricName: "ChunkOnlyBinlogSeconds", MetricValue: "$.result.chunkOnlySeconds" }),
      ],
    });
    t.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
  });

  it("installs binlog-stream on every tagged host of each cluster with the agent document", () => {
    template().hasResourceProperties("AWS::SSM::Association", {
      AssociationName: "rewind-install-orders",
      Name: "Rewind-RunAgent",
      DocumentVersion: "$LATEST",
      Targets: [{ Key: "tag:rewind:cluster", Values: ["orders"] }],
      Parameters: { Command: ["install"] },
      ScheduleExpression: "rate(30 minutes)",
    });
  });

  it("outputs what the hosts' agent config and instance role need", () => {
    const t = template();
    t.hasOutput("BucketName", { Value: { Ref: Match.stringLikeRegexp("^StorageBucket") } });
    t.hasOutput("KeyArn", { Value: { "Fn::GetAtt": [Match.stringLikeRegexp("^StorageKey"), "Arn"] } });
    t.hasOutput("HostPolicyArnorders", { Value: { Ref: Match.stringLikeRegexp("^ordersHostPolicy") } });
    t.hasResourceProperties("AWS::IAM::ManagedPolicy", { ManagedPolicyName: "rewind-host-orders" });
    t.hasOutput("RestoreStateMachineArn", { Value: { Ref: Match.stringLikeRegexp("^RestoreStateMachine") } });
  });

  it("locks every object version in governance mode for what the PITR window needs unless configured otherwise", () => {
    // pitrDays 7 + a day between the nightly full backups + a day.
    template().hasResourceProperties("AWS::S3::Bucket", {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: "Enabled",
        Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 9 } },
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 1 } }),
          Match.objectLike({ ExpiredObjectDeleteMarker: true }),
        ]),
      },
    });
    // Weekly full backups: the window may start from one 7 days older.
    template({ ...minimal, schedules: { full: "cron(0 2 ? * SUN *)" } }).hasResourceProperties(
      "AWS::S3::Bucket",
      {
        ObjectLockConfiguration: Match.objectLike({
          Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 15 } },
        }),
      },
    );
    // Off: still enabled (CloudFormation would replace the bucket to turn it on later), no default retention.
    const off = template({ ...minimal, bucket: { objectLockMode: "off" } });
    off.hasResourceProperties("AWS::S3::Bucket", {
      VersioningConfiguration: { Status: "Enabled" },
      ObjectLockEnabled: true,
    });
    for (const bucket of Object.values(off.findResources("AWS::S3::Bucket")))
      expect(bucket.Properties.ObjectLockConfiguration?.Rule).toBeUndefined();
    const retention = (t: Template) =>
      JSON.parse(
        Object.values(t.findResources("AWS::Lambda::Function"))[0]!.Properties.Environment.Variables
          .REWIND_RETENTION,
      );
    expect(retention(template())).toEqual({ fullBackups: 7, pitrDays: 7, objectLockDays: 9 });
    expect(retention(off)).toEqual({ fullBackups: 7, pitrDays: 7 });
    template({
      ...minimal,
      bucket: { objectLockMode: "compliance", objectLockDays: 30, infrequentAccessAfterDays: 30 },
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
    const all = Object.values(documents) as {
      Properties: { Name: string; Content: DocumentContent };
    }[];
    const document = all.find((each) => each.Properties.Name === "Rewind-RunAgent");
    expect(document).toBeDefined();
    // The watchdog's document downloads nothing: it runs what install put on the host.
    const installed = all.find((each) => each.Properties.Name === "Rewind-RunInstalledAgent");
    expect(installed!.Properties.Content.mainSteps.map((step) => step.action)).toEqual([
      "aws:runShellScript",
    ]);
    expect(Object.keys(installed!.Properties.Content.parameters)).toEqual(["Command"]);
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
    ["TaskToken", "token'; curl evil"],
    ["Cluster", "orders; reboot"],
    ["Plan", "s3://bucket/key; reboot"],
  ] as const)("the %s pattern refuses shell: %s", (name, value) => {
    expect(new RegExp(AGENT_DOCUMENT_PARAMETERS[name].pattern).test(value)).toBe(false);
  });

  it("declares only parameters a state machine or the rotation function sends", () => {
    const definitions = stateMachineDefinitions(template().toJSON() as never);
    const sent = new Set<string>();
    const visit = (value: unknown) => {
      if (Array.isArray(value)) value.forEach(visit);
      else if (value && typeof value === "object") {
        const record = value as Record<string, unknown>;
        if (record.DocumentName === "Rewind-RunAgent" && record.Parameters)
          for (const key of Object.keys(record.Parameters as object)) sent.add(key.replace(/\.\$$/, ""));
        Object.values(record).forEach(visit);
      }
    };
    visit(definitions);
    for (const name of ROTATION_PARAMETERS) sent.add(name);
    expect([...sent].sort()).toEqual(Object.keys(AGENT_DOCUMENT_PARAMETERS).sort());
  });

  it("the patterns accept what operators and the state machines send", () => {
    const accepts = (name: keyof typeof AGENT_DOCUMENT_PARAMETERS, value: string) =>
      expect(new RegExp(AGENT_DOCUMENT_PARAMETERS[name].pattern).test(value), `${name}=${value}`).toBe(true);
    accepts("Command", "binlog-push");
    accepts("Cluster", "orders");
    accepts("TaskToken", "AQCEAAAAKgAAAAMAAAAAAAAAAeMTb1Y+abc/def==");
    accepts("Plan", "s3://rewind-backups-123/orders/restores/exec-1/plan.json");
  });
});

describe("cdk-nag AwsSolutions", () => {
  function synthWithNag(extra?: (stack: RewindStack) => void) {
    const app = new App({ outdir: `${scratch.dir}/nag-${Math.random().toString(36).slice(2)}` });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = synthStack({ ...minimal, alarms: { notificationEmail: "dba@example.com" } }, app);
    extra?.(stack);
    return () => app.synth();
  }

  it("has no unacknowledged finding", () => {
    expect(synthWithNag()).not.toThrow();
  });

  it("fails synth on a new finding, so acknowledgements cannot hide one", () => {
    const addUnloggedBucket = (stack: RewindStack) => new s3.Bucket(stack, "Careless", { enforceSSL: true });
    expect(synthWithNag(addUnloggedBucket)).toThrow(/Rewind\/Careless\/Resource[\s\S]*AwsSolutions-S1/);
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
      expect.arrayContaining([
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::SSM::Document",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::CloudFormation::Stack",
      ]),
    );
    // The cluster's own resources are in its nested stack's template, written beside it.
    const nested = readdirSync(out).filter((file) => file.endsWith(".nested.template.json"));
    expect(nested).toHaveLength(1);
    const clusterTemplate = JSON.parse(readFileSync(`${out}/${nested[0]}`, "utf8"));
    expect(Object.values(clusterTemplate.Resources).map((r) => (r as { Type: string }).Type)).toEqual(
      expect.arrayContaining([
        "AWS::Scheduler::Schedule",
        "AWS::SecretsManager::Secret",
        "AWS::SSM::Association",
      ]),
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
      /bucket.objectLockDays: Object Lock \(3 days\) must cover what the PITR window needs: 9 days/,
    ],
    [
      { ...minimal, bucket: { objectLockMode: "off", objectLockDays: 10 } },
      /bucket.objectLockDays: objectLockDays needs Object Lock/,
    ],
    [{ ...minimal, alarms: { notificationEmail: "dba at example" } }, /alarms.notificationEmail/],
    [{ ...minimal, surprise: true }, /Unrecognized key: "surprise"/],
    [
      { ...minimal, alarms: { hoursWithoutBackup: 200 } },
      /alarms.hoursWithoutBackup: at most 168 hours \(CloudWatch evaluates alarms over at most 7 days\)/,
    ],
    [{ ...minimal, schedules: { drillDatadir: "drill" } }, /schedules.drillDatadir: an absolute path/],
    [
      { clusters: [{ name: "a".repeat(50), engine: "mariadb" }] },
      /clusters.0.name: cluster name "a{50}" has 50 characters; at most 49 fit, since its binlog schedule rewind-binlogs-<cluster> may have at most 64/,
    ],
  ])("a bad config fails synth naming the field and the fix (%#)", (raw, message) => {
    expect(() => parseRewindConfig(raw, "rewind.config.json")).toThrow(message);
  });

  it("a cluster name of the longest allowed length makes schedule names Scheduler accepts", () => {
    const name = "a".repeat(49);
    const schedules = Object.values(
      synthTemplate({
        clusters: [{ name, engine: "mariadb" }],
        schedules: { incremental: "cron(15 12 * * ? *)" },
      }).findResources("AWS::Scheduler::Schedule"),
    ).map((schedule) => (schedule as { Properties: { Name: string } }).Properties.Name);
    expect(schedules).toContain(`rewind-binlogs-${name}`);
    for (const scheduleName of schedules) expect(scheduleName.length).toBeLessThanOrEqual(64);
  });

  it("the example config in the repo is valid", async () => {
    const { loadRewindConfig } = await import("../../infra/config.js");
    expect(loadRewindConfig("rewind.config.example.json").clusters[0]!.name).toBe("orders");
  });
});
