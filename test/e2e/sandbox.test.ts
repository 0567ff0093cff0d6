import path from "node:path";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountsSecretName } from "../../core/contracts/accounts.js";
import type { RestoreProgressRecord } from "../../core/contracts/restore-progress.js";
import { HISTORY_ID } from "../../core/history.js";
import { readRestoreProgress } from "../../core/store/restore-progress.js";
import { readStreamStatus } from "../../host-agent/binlog/stream-status.js";
import { accountOf } from "../../sandbox/hosts/agent.js";
import { removeStatement, Sandbox, waitForReplica } from "../../sandbox/sandbox.js";
import { runFailover, runRollBack, runStory } from "../../sandbox/story.js";
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

  it("backs up from the replica, streams binlogs, and restores to the second before a DROP TABLE, exactly", async () => {
    const s3 = new S3Client({
      region: "us-east-1",
      endpoint: sandbox.state.s3Endpoint,
      forcePathStyle: true,
      credentials: sandbox.operator,
    });
    // Watches the restores' progress files while the story runs, as an operator would.
    const running: RestoreProgressRecord[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = await readRestoreProgress(
          s3,
          sandbox.state.bucket,
          { cluster: "orders" },
          { finished: 0 },
        );
        running.push(...now.filter((record) => record.state === "running"));
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    const report = await runStory(sandbox, {
      shippingRounds: 2,
      drill: true,
      step: () => {},
      info: () => {},
      prove: (claim, ok, detail = "") => proofs.push({ claim, ok, detail }),
    });
    watching = false;
    await watcher;
    expect(proofs.filter((proof) => !proof.ok)).toEqual([]);
    expect(proofs.map((proof) => proof.claim)).toEqual(
      expect.arrayContaining([
        "the backup was taken from the healthy replica, per policy prefer-replica",
        "the dropped table is back on the live primary, identical, while the workload kept writing",
        "every row the workload wrote after the drop is still there",
        "the replica got the table back through the primary's binlog",
        "the dropped table is back, identical",
        expect.stringMatching(/^every row committed up to .* is there, and none after$/),
        "the newest backup restored on a scratch datadir, replayed to the newest shipped point, and CHECK TABLE passed",
      ]),
    );
    expect(report.backupSource).toBe(sandbox.host("replica").instanceId);
    expect(report.rpoSeconds).toBeLessThan(30);
    // Each restore leaves its plan and, written by the agent, its report (DESIGN §3).
    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: sandbox.state.bucket, Prefix: "orders/restores/" }),
    );
    const keys = (listed.Contents ?? []).map((object) => object.Key!);
    const reports = keys.filter((key) => key.endsWith("/report.json"));
    // The table restore, the whole-server restore and the drill.
    expect(reports).toHaveLength(3);
    expect(keys.filter((key) => key.endsWith("/plan.json"))).toHaveLength(3);
    const progressed = await readRestoreProgress(s3, sandbox.state.bucket, { cluster: "orders" });
    const expectedPhases = {
      tables: ["download", "extract", "prepare", "replay", "copy"],
      whole: ["download", "extract", "prepare", "replay"],
      scratch: ["download", "extract", "prepare", "replay", "check"],
    };
    expect(progressed.map((p) => p.kind).sort()).toEqual(["scratch", "tables", "whole"]);
    for (const key of reports) {
      const body = await s3.send(new GetObjectCommand({ Bucket: sandbox.state.bucket, Key: key }));
      const written = JSON.parse(await body.Body!.transformToString());
      expect(written).toMatchObject({ ok: true, result: { gtidReached: expect.any(String) } });
      // Its progress file ended at 100% with the phases in order, each timed as in the report.
      const id = key.split("/").at(-2)!;
      const progress = progressed.find((p) => p.restoreId === id)!;
      expect(progress).toMatchObject({ state: "succeeded", percent: 100, etaSeconds: 0 });
      expect(progress.phases.map((p) => p.phase)).toEqual(expectedPhases[progress.kind]);
      for (const phase of progress.phases) {
        expect(phase.seconds).not.toBeNull();
        if (phase.total !== null) expect(phase.done).toBe(phase.total);
      }
      expect(written.phases).toEqual(progress.phases);
      // ...and was seen under way while the restore ran.
      const during = running.filter((p) => p.restoreId === id);
      expect(during.length, `progress of ${progress.kind} restore ${id} seen while it ran`).toBeGreaterThan(
        0,
      );
      for (const p of during) {
        if (p.percent !== null) expect(p.percent).toBeLessThanOrEqual(100);
      }
    }
    process.stderr.write(
      `restore phases: ${JSON.stringify(progressed.map((p) => ({ kind: p.kind, phases: p.phases.map((ph) => [ph.phase, ph.seconds, ph.done, ph.total]) })))}\n`,
    );
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
    // The password changed on the servers but not in Secrets Manager: each host's cached
    // password and the one it fetches afresh are both refused.
    const { password } = accountOf(
      { secrets: sandbox.aws.secretsManager!, accountsSecretId: accountsSecretName("orders") },
      "backup",
    );
    const alter = (to: string) => `ALTER USER 'rewind_backup'@'localhost' IDENTIFIED BY '${to}'`;
    await sandbox.primary.query(alter("changed-Pw-91ab"));
    await sandbox.standby.query(alter("changed-Pw-91ab"));
    await waitForReplica(sandbox.primary, sandbox.replica);
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
      await sandbox.primary.query(alter(password));
      await sandbox.standby.query(alter(password));
    }
  }, 180_000);

  it("rotates the accounts secret through the rotation Lambda and the agents: new passwords everywhere, the old refused, replication and the streamer never stop, a backup during it succeeds", async () => {
    const secrets = sandbox.aws.secretsManager!;
    const id = accountsSecretName("orders");
    const account = (name: "backup" | "replication" | "admin") =>
      accountOf({ secrets, accountsSecretId: id }, name);
    const old = { backup: account("backup"), replication: account("replication") };
    const servers = [sandbox.primary, sandbox.replica, sandbox.standby];
    const streamed = () =>
      readStreamStatus(path.join(sandbox.host("primary").dir, "state"))?.lastChunkAt ?? "";
    const before = streamed();
    // A backup started as the rotation starts: select-source, the agent and verify all log in during it.
    const backup = sandbox.controlPlane.startExecution("Rewind-Backup", { cluster: "orders", type: "full" });
    const token = await secrets.rotate(id);
    const backedUp = await backup;
    expect(backedUp.status, backedUp.cause).toBe("SUCCEEDED");
    expect(secrets.stages(id)[token]).toEqual(["AWSCURRENT"]);
    const now = account("backup");
    expect(now.password).not.toBe(old.backup.password);
    expect(account("replication").password).not.toBe(old.replication.password);
    for (const server of servers) {
      expect(await server.scalarAs({ user: now.username, password: now.password }, "SELECT 1")).toBe("1");
      await expect(
        server.scalarAs({ user: old.backup.username, password: old.backup.password }, "SELECT 1"),
      ).rejects.toThrow(/Access denied/);
    }
    // The replica logs in to the primary with the new replication password, and keeps up.
    const status = await sandbox.replica.query("SHOW SLAVE STATUS");
    expect(status.length).toBe(1);
    await sandbox.primary.query(
      "CREATE TABLE IF NOT EXISTS rewind_test.after_rotation (id INT PRIMARY KEY); INSERT INTO rewind_test.after_rotation VALUES (1)",
    );
    await waitForReplica(sandbox.primary, sandbox.replica);
    expect(await sandbox.replica.scalar("SELECT COUNT(*) FROM rewind_test.after_rotation")).toBe("1");
    // The streamer on the primary went on shipping with the new password, without a restart.
    await expect.poll(streamed, { timeout: 30_000 }).not.toBe(before);
    expect(readStreamStatus(path.join(sandbox.host("primary").dir, "state"))?.lastError ?? null).toBeNull();
  }, 300_000);

  it("a rotation that fails in setSecret or testSecret puts every host back on the current passwords and leaves AWSCURRENT as it was; each step repeated is harmless", async () => {
    const secrets = sandbox.aws.secretsManager!;
    const id = accountsSecretName("orders");
    const current = () => accountOf({ secrets, accountsSecretId: id }, "backup");
    const works = async (credentials: { username: string; password: string }) => {
      for (const server of [sandbox.primary, sandbox.replica, sandbox.standby])
        expect(
          await server.scalarAs({ user: credentials.username, password: credentials.password }, "SELECT 1"),
        ).toBe("1");
    };
    // setSecret: the replica does not get the command (it went offline) after the primary and
    // the standby took the new passwords.
    const stagesBefore = secrets.stages(id);
    const before = current();
    sandbox.controlPlane.ssm.failNext(sandbox.host("replica").instanceId, (env) => env.SSM_Step === "set");
    await expect(secrets.rotate(id)).rejects.toMatchObject({ name: "RotationFailed" });
    expect(Object.values(secrets.stages(id)).flat()).not.toContain("AWSPENDING");
    expect(secrets.stages(id)).toMatchObject(
      Object.fromEntries(Object.entries(stagesBefore).filter(([, stages]) => stages.includes("AWSCURRENT"))),
    );
    await works(before);
    await waitForReplica(sandbox.primary, sandbox.replica);

    // Every step run twice (Secrets Manager retries), then testSecret failing: the standby lost
    // the new password after setSecret.
    const { token } = secrets.beginRotation(id);
    await secrets.rotationStep(id, "createSecret", token);
    await secrets.rotationStep(id, "createSecret", token);
    await secrets.rotationStep(id, "setSecret", token);
    await secrets.rotationStep(id, "setSecret", token);
    await sandbox.standby.query(
      `ALTER USER '${before.username}'@'localhost' IDENTIFIED BY '${before.password}'`,
    );
    await expect(secrets.rotationStep(id, "testSecret", token)).rejects.toMatchObject({
      name: "RotationFailed",
    });
    expect(current()).toEqual(before);
    await works(before);
    await waitForReplica(sandbox.primary, sandbox.replica);

    // And a rotation afterwards goes through.
    await secrets.rotate(id);
    await works(current());
  }, 300_000);

  // Last: it loses the primary for good.
  it("the primary lost with kill -9 mid-workload, the replica promoted: a restore to a point after the failover, from the backup taken before it, is exact", async () => {
    const failoverProofs: typeof proofs = [];
    const report = await runFailover(sandbox, {
      step: () => {},
      info: () => {},
      prove: (claim, ok, detail = "") => failoverProofs.push({ claim, ok, detail }),
    });
    expect(failoverProofs.filter((proof) => !proof.ok)).toEqual([]);
    expect(failoverProofs.map((proof) => proof.claim)).toEqual([
      "the promoted replica's binlog-stream noticed its new role and ships",
      expect.stringMatching(/^every row committed up to .*, after the failover, is there, and none after$/),
    ]);
    expect(report.windowSources).toContain("2-db-replica");
  }, 300_000);

  // After the failover: the second recovery, on a new history (issue 22).
  it("roll back and carry on after the failover: the standby restored with promote begins a history, and the latest point of it is exact", async () => {
    const rollBackProofs: typeof proofs = [];
    const report = await runRollBack(sandbox, {
      step: () => {},
      info: () => {},
      prove: (claim, ok, detail = "") => rollBackProofs.push({ claim, ok, detail }),
    });
    expect(rollBackProofs.filter((proof) => !proof.ok)).toEqual([]);
    expect(rollBackProofs.map((proof) => proof.claim)).toEqual([
      "the restore reports the history its promotion began",
      expect.stringMatching(
        /^the promoted standby holds exactly the new primary's rows at .*, before the DELETE, and takes writes$/,
      ),
      "the latest point on the new history: every row of the promoted standby, none of the discarded future (its DELETE included)",
      "the restored host came up read-only: it is no second primary",
    ]);
    expect(report.history).toMatch(HISTORY_ID);
    expect(report.parent).toMatch(HISTORY_ID);
  }, 300_000);
});

describe("the sandbox enforces the template's IAM", () => {
  const scratch = scratchDir("e2e-iam");
  let sandbox: Sandbox | undefined;

  afterAll(async () => {
    await sandbox?.down();
    scratch.remove();
  });

  it("fails the demo's story naming the permission a deploy without it would lack", async () => {
    const log: string[] = [];
    sandbox = await Sandbox.up({
      root: path.join(scratch.dir, "sandbox"),
      datasetMb: 2,
      log: (line) => log.push(line),
      // The hosts' data keys: without them no agent can encrypt a backup.
      editTemplate: (template) => removeStatement(template, "ordersHostPolicy", "DataKeys"),
    });
    const story = runStory(sandbox, {
      shippingRounds: 1,
      drill: false,
      step: () => {},
      info: () => {},
      prove: () => {},
    });
    await expect(story).rejects.toThrow(
      /Rewind-Backup .* failed with .*may not kms:GenerateDataKey on arn:aws:kms:/,
    );
    expect(log).toContainEqual(
      expect.stringMatching(
        /^sandbox IAM: orders database hosts \(arn:aws:iam::123456789012:role\/rewind-host-orders\) may not kms:GenerateDataKey on arn:aws:kms:us-east-1:123456789012:key\/StorageKey\w+: no policy allows it$/,
      ),
    );
  }, 300_000);
});
