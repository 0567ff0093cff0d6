import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountsSecretName } from "../../core/contracts/accounts.js";
import { s3Client } from "../../host-agent/clients.js";
import { AGENT_BUNDLE } from "../../infra/bundle-agent.js";
import { applyRetention } from "../../lambdas/lib/retention.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import type { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";
import { type AgentRun, accountOf, setUpLocalAgent, startAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { loadDataset } from "../../sandbox/hosts/workload.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, scratchDir } from "../support.js";
import { manifestOf } from "./restore-helpers.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

describe("a backup that fails anywhere leaves nothing that looks complete", () => {
  const scratch = scratchDir("backup-failures");
  let s3: S3Server;
  let source: MariaDbServer;
  let config: Record<string, unknown>;
  let configFile: string;
  let secrets: LocalSecretsManager;

  const keysInBucket = async (): Promise<string[]> => {
    const listed = await s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint }).send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "orders/backups/" }),
    );
    return (listed.Contents ?? []).map((object) => object.Key!);
  };
  const manifests = async () => (await keysInBucket()).filter((key) => key.endsWith("/manifest.json"));
  const childrenOf = (pid: number, name: string): number[] => {
    try {
      return execFileSync("pgrep", ["-P", String(pid), name])
        .toString()
        .trim()
        .split("\n")
        .map(Number);
    } catch {
      return [];
    }
  };
  /**
   * Starts a slow backup (zstd -19) and waits until its stored stream has reached S3: the
   * smallest parts S3 takes (5 MiB), so the first upload starts early in a backup that slow.
   */
  const backupInFlight = async () => {
    const run = startAgent(AGENT_BUNDLE, [
      "backup",
      "--type",
      "full",
      "--config",
      configFile,
      "--compression-level",
      "19",
      "--part-size-mib",
      "5",
    ]);
    // At -19 the first 5 MiB stored take tens of seconds here (each 16 MiB block is compressed
    // whole before it is stored).
    await waitFor(
      "the backup to start uploading",
      async () => {
        // zstd starts after this run's record of unfinished uploads replaced any older one.
        if (childrenOf(run.child.pid!, "zstd").length === 0) return false;
        const state = path.join(scratch.dir, "agent", "state", "unfinished-backup.json");
        return (
          existsSync(state) && Object.keys(JSON.parse(readFileSync(state, "utf8")).uploads ?? {}).length > 0
        );
      },
      { timeoutMs: 150_000 },
    );
    return run;
  };
  const expectNextBackupSucceeds = async () => {
    const before = await manifests();
    const run = await agent(["backup", "--type", "full", "--config", configFile]);
    const backupId = backupIdOf(run);
    expect(await manifests()).toEqual([...before, `orders/backups/${backupId}/manifest.json`].sort());
    await expectRetentionRemovesTheRest();
  };
  /**
   * Hosts may not delete: what a failed backup left (no manifest, never used) is removed by
   * retention, the control plane's, once no backup can still be running (here: three days on).
   */
  const expectRetentionRemovesTheRest = async () => {
    const client = s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
    await applyRetention(client, BUCKET, "orders", { fullBackups: 1000, pitrDays: 1000 }, inThreeDays());
    const complete = await manifests();
    for (const key of await keysInBucket()) {
      expect(complete).toContain(`${key.split("/").slice(0, 3).join("/")}/manifest.json`);
    }
  };

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    source = await MariaDbServer.start({ baseDir: `${scratch.dir}/source`, serverId: 301 });
    await loadDataset(source, { megabytes: 60 });
    ({ config, configFile, secrets } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: source,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-301",
      backup: { parallel: 1, uploadConcurrency: 2, partSizeMiB: 5, segmentSizeMiB: 5 },
    }));
  });

  afterAll(async () => {
    await source?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("wrong credentials: a clear error, no manifest; a rotated password is picked up past the host's cache", async () => {
    const accounts = accountsSecretName("orders");
    const stored = secrets.current(accounts) as Record<string, unknown>;
    const good = accountOf({ secrets, accountsSecretId: accounts }, "backup");
    // The password changed on the server but not in Secrets Manager: the cached one and the
    // one fetched afresh are both refused.
    const rotated = "rotated-Pw-4e1c";
    await source.query(`ALTER USER 'rewind_backup'@'localhost' IDENTIFIED BY '${rotated}'`);
    try {
      const run = await agent(["backup", "--type", "full", "--config", configFile]);
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.name).toBe("CredentialsRejected");
      expect(run.output?.error?.message).toMatch(
        /refused the account's credentials.*run `rewind-agent users ensure` on the primary/,
      );
      expect(await manifests()).toEqual([]);
      // Secrets Manager catches up (a rotation): the next run replaces its cached password.
      secrets.put(accounts, { ...stored, backup: { ...good, password: rotated } });
      await expectNextBackupSucceeds();
    } finally {
      await source.query(`ALTER USER 'rewind_backup'@'localhost' IDENTIFIED BY '${good.password}'`);
      secrets.put(accounts, stored);
    }
  });

  it("a missing privilege is named before the backup tool starts, and nothing is uploaded", async () => {
    await source.query("REVOKE RELOAD ON *.* FROM 'rewind_backup'@'localhost'");
    try {
      const before = await manifests();
      const run = await agent(["backup", "--type", "full", "--config", configFile]);
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.name).toBe("ConfigInvalid");
      expect(run.output?.error?.message).toMatch(/the backup account lacks RELOAD ON \*\.\*/);
      expect(run.stderr).not.toMatch(/backup started/);
      expect(await manifests()).toEqual(before);
    } finally {
      await source.query("GRANT RELOAD ON *.* TO 'rewind_backup'@'localhost'");
    }
    await expectNextBackupSucceeds();
  });

  it("zstd killed mid-stream: CompressionFailed, no manifest", async () => {
    const before = await manifests();
    const { child, done } = await backupInFlight();
    const [zstd] = childrenOf(child.pid!, "zstd");
    expect(zstd).toBeDefined();
    process.kill(zstd!, "SIGKILL");
    const run: AgentRun = await done;
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.name).toBe("CompressionFailed");
    expect(run.output?.error?.message).toMatch(/zstd was killed by SIGKILL/);
    expect(await manifests()).toEqual(before);
    await expectNextBackupSucceeds();
  });

  it("the backup tool killed at 20 random moments: every run reports its stage, nothing looks complete", async () => {
    // How long a whole backup takes here bounds the random moments.
    const timed = Date.now();
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    const fullRun = Date.now() - timed;
    const reports: string[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = await manifests();
      const { child, done } = startAgent(AGENT_BUNDLE, ["backup", "--type", "full", "--config", configFile]);
      let tool: number | undefined;
      await waitFor("mariabackup to start", async () => {
        [tool] = childrenOf(child.pid!, "^maria.*backup");
        return tool !== undefined || child.exitCode !== null;
      });
      // From the tool's start: it runs for part of a whole backup, so most moments land inside it.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * fullRun * 0.6));
      if (tool !== undefined && existsSync(`/proc/${tool}`)) process.kill(tool, "SIGKILL");
      const run = await withDeadline(done, 60_000, `attempt ${attempt}: the agent never exited`);
      expect(
        run.output,
        `attempt ${attempt}: exit ${run.exitCode}, no JSON result: ${run.stderr.slice(-2000)}`,
      ).toBeDefined();
      if (run.output!.ok) {
        // The tool had finished before the kill: a complete backup, reported as one.
        expect(await manifests()).toEqual(
          [...before, `orders/backups/${backupIdOf(run)}/manifest.json`].sort(),
        );
        reports.push("complete");
        continue;
      }
      expect(run.exitCode).toBe(1);
      expect(run.output!.error?.name, run.output!.error?.message).toBe("BackupToolFailed");
      expect(run.output!.error?.message).toMatch(/stage "tool"/);
      expect(await manifests()).toEqual(before);
      reports.push(run.output!.error!.name);
    }
    await expectRetentionRemovesTheRest();
    // The kills really landed inside the tool's run, most of the time (the rest came after it ended).
    expect(reports.filter((report) => report === "BackupToolFailed").length).toBeGreaterThanOrEqual(7);
  });

  it("S3 unreachable mid-upload: UploadFailed, no manifest; the next backup succeeds, retention removes the rest", async () => {
    const before = await manifests();
    const { done } = await backupInFlight();
    s3.kill();
    const run = await done;
    await s3.restart();
    expect(run.exitCode, run.stderr).toBe(1);
    expect(run.output?.error?.name, run.stderr).toBe("UploadFailed");
    expect(await manifests()).toEqual(before);
    await expectNextBackupSucceeds();
  });

  it("agent SIGKILLed: its tools die with it, no manifest; the next backup aborts its uploads and succeeds", async () => {
    const before = await manifests();
    const { child, done } = await backupInFlight();
    const tools = [...childrenOf(child.pid!, "^maria.*backup"), ...childrenOf(child.pid!, "zstd")];
    expect(tools.length).toBe(2);
    child.kill("SIGKILL");
    await done;
    await waitFor("mariabackup and zstd to exit", async () =>
      tools.every((pid) => !existsSync(`/proc/${pid}`) || isZombie(pid)),
    );
    expect(await manifests()).toEqual(before);
    await expectNextBackupSucceeds();
  });

  it("a second backup while one runs gets AgentBusy; SIGTERM then stops the first cleanly", async () => {
    const before = await manifests();
    const { child, done } = await backupInFlight();
    const second = await agent(["backup", "--type", "full", "--config", configFile]);
    expect(second.exitCode).toBe(1);
    expect(second.output?.error?.name).toBe("AgentBusy");
    expect(second.output?.error?.message).toMatch(/busy: backup --type full \(pid \d+\)/);
    child.kill("SIGTERM");
    const first = await done;
    expect(first.exitCode).toBe(1);
    expect(first.output?.error?.name).toBe("AgentInterrupted");
    expect(await manifests()).toEqual(before);
    await expectNextBackupSucceeds();
  });

  it("verify --deep flags a flipped byte and a truncated segment", async () => {
    const backupId = backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
    const manifest = await manifestOf(config, backupId);
    expect(manifest.segments.length).toBeGreaterThan(2);
    expect(
      (await agent(["verify", "--deep", "--backup-id", backupId, "--config", configFile])).exitCode,
    ).toBe(0);

    const flipped = s3.objectPath(BUCKET, manifest.segments[1]!.key);
    const bytes = readFileSync(flipped);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(flipped, bytes);
    const deep = await agent(["verify", "--deep", "--backup-id", backupId, "--config", configFile]);
    expect(deep.exitCode).toBe(1);
    expect(deep.output?.error?.name).toBe("VerifyFailed");
    expect(deep.output?.error?.message).toContain(
      `of ${manifest.segments[1]!.key} does not match its SHA-256`,
    );

    const truncated = s3.objectPath(BUCKET, manifest.segments[2]!.key);
    truncateSync(truncated, statSync(truncated).size - 1000);
    // Restore the flipped byte so only the truncation is left to find.
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(flipped, bytes);
    const cut = await agent(["verify", "--deep", "--backup-id", backupId, "--config", configFile]);
    expect(cut.exitCode).toBe(1);
    expect(cut.output?.error?.name).toBe("VerifyFailed");
    expect(cut.output?.error?.message).toContain(manifest.segments[2]!.key);
  });

  it("no password appears in the process table, the logs or S3 during a backup", async () => {
    const { password } = accountOf({ secrets, accountsSecretId: accountsSecretName("orders") }, "backup");
    const { child, done } = startAgent(AGENT_BUNDLE, ["backup", "--type", "full", "--config", configFile]);
    const tables: string[] = [];
    while (child.exitCode === null) {
      tables.push(execFileSync("ps", ["-eo", "args"]).toString());
      tables.push(environOf(child.pid));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const run = await done;
    const backupId = backupIdOf(run);
    expect(tables.length).toBeGreaterThan(3);
    expect(tables.some((table) => table.includes("mariabackup"))).toBe(true);
    for (const table of tables) expect(table).not.toContain(password);
    expect(run.stderr).not.toContain(password);
    const workDir = path.join(scratch.dir, "agent", "work");
    for (const file of readdirSync(workDir).filter((name) => name.endsWith(".log"))) {
      expect(readFileSync(path.join(workDir, file), "utf8")).not.toContain(password);
    }
    expect(JSON.stringify(await manifestOf(config, backupId))).not.toContain(password);
    // The temporary defaults files are gone, including those of the agents killed above.
    expect(readdirSync(path.join(scratch.dir, "agent", "state", "credentials"))).toEqual([]);
  });
});

/** The environment of a running process; empty when it has exited between two looks. */
function environOf(pid: number | undefined): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return "";
  }
}

function inThreeDays(): Date {
  return new Date(Date.now() + 3 * 24 * 3600 * 1000);
}

function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}
