import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../infra/local/sandbox.js";
import { runStory } from "../../infra/local/story.js";
import { scratchDir } from "../support.js";

/**
 * The demo's story on small data, end to end: the synthesized state machines, the real Lambda
 * handlers, the real SSM document and agent, real MariaDB servers and the S3 stand-in.
 */
describe("the sandbox: the deployed control plane on one machine", () => {
  const scratch = scratchDir("e2e");
  let sandbox: Sandbox;
  const proofs: { claim: string; ok: boolean; detail: string }[] = [];

  beforeAll(async () => {
    sandbox = await Sandbox.up({ root: path.join(scratch.dir, "sandbox"), datasetMb: 8 });
  }, 300_000);

  afterAll(async () => {
    await sandbox?.down();
    scratch.remove();
  });

  it("backs up from the replica, ships binlogs, and restores to the second before a DROP TABLE, exactly", async () => {
    const report = await runStory(sandbox, {
      shippingRounds: 2,
      drill: true,
      step: () => {},
      info: () => {},
      prove: (claim, ok, detail = "") => proofs.push({ claim, ok, detail }),
    });
    expect(proofs.filter((proof) => !proof.ok)).toEqual([]);
    expect(proofs.map((proof) => proof.claim)).toEqual(
      expect.arrayContaining([
        "the backup was taken from the healthy replica, per policy prefer-replica",
        "the dropped table is back, identical",
        expect.stringMatching(/^every row committed up to .* is there, and none after$/),
        "the newest backup restored on a scratch datadir and replayed to the newest shipped point",
      ]),
    );
    expect(report.backupSource).toBe(sandbox.host("replica").instanceId);
    expect(report.rpoSeconds).toBeLessThan(30);
  }, 600_000);

  it("refuses a restore before the oldest backup in planning, and never reaches the host", async () => {
    const run = await sandbox.controlPlane.startExecution("Rewind-Restore", {
      cluster: "orders",
      targetInstanceId: sandbox.host("standby").instanceId,
      pointInTime: "2020-01-01T00:00:00Z",
      datadir: sandbox.host("standby").datadir,
    });
    expect(run.status).toBe("FAILED");
    expect(run.error).toBe("RestorePlanRefused");
    expect(run.cause).toContain("before the oldest full backup's consistent point");
    expect(run.steps.map((step) => step.state)).toEqual(["PlanRestore", "NotifyFailure"]);
  }, 120_000);

  it("refuses bad input with the field to fix", async () => {
    const run = await sandbox.controlPlane.startExecution("Rewind-Restore", {
      cluster: "orders",
      targetInstanceId: "db-standby",
      pointInTime: "yesterday",
    });
    expect(run.status).toBe("FAILED");
    expect(run.error).toBe("InputInvalid");
    expect(run.cause).toContain("targetInstanceId: the EC2 instance id");
    expect(run.cause).toContain("pointInTime: an ISO 8601 time with a zone");
  }, 120_000);

  it("fails a backup with the agent's own error when the source's credentials are wrong", async () => {
    const { readFileSync, writeFileSync } = await import("node:fs");
    const replica = sandbox.host("replica");
    const config = JSON.parse(readFileSync(replica.configFile, "utf8"));
    const secretsFile = config.secretsFile as string;
    const secrets = readFileSync(secretsFile, "utf8");
    writeFileSync(
      secretsFile,
      JSON.stringify({
        ...JSON.parse(secrets),
        "rewind/orders/backup": { username: "rewind_backup", password: "wrong" },
      }),
    );
    try {
      // select-source asks every host for its status with the same user: none can answer.
      const run = await sandbox.controlPlane.startExecution("Rewind-Backup", {
        cluster: "orders",
        type: "full",
      });
      expect(run.status).toBe("FAILED");
      expect(run.error).toBe("NoEligibleSource");
      expect(run.cause).toContain("CredentialsRejected");
    } finally {
      writeFileSync(secretsFile, secrets);
    }
  }, 180_000);
});
