import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxIam } from "../../sandbox/aws/iam.js";
import { LocalKms } from "../../sandbox/aws/kms.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import type { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";
import { ssmAgentShim } from "../../sandbox/aws/ssm.js";
import type { SynthesizedControlPlane } from "../../sandbox/control-plane.js";
import { setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { removeStatement, sandboxIamModel, synthesizeControlPlane } from "../../sandbox/sandbox.js";
import { agent, BUCKET, installAgent, scratchDir } from "../support.js";

/**
 * `rewind-agent doctor` on a real MariaDB host, with the data key behind the template's IAM (the
 * host's role as the stack writes it): a correct host passes; each broken item fails with its fix.
 */
describe("rewind-agent doctor", () => {
  const scratch = scratchDir("doctor");
  let s3: S3Server;
  let server: MariaDbServer;
  let noBinlog: MariaDbServer;
  const kmsServers: LocalKms[] = [];
  let configFile: string;
  let config: Record<string, unknown>;
  let synthesized: SynthesizedControlPlane;
  let hostEnv: NodeJS.ProcessEnv;
  let secrets: LocalSecretsManager;

  /** A KMS stand-in enforcing the template's IAM (edited or not), and the host role's credentials. */
  const kmsFor = async (edit?: (s: SynthesizedControlPlane) => void) => {
    const copy = structuredClone(synthesized);
    edit?.(copy);
    const iam = new SandboxIam(sandboxIamModel(copy, BUCKET), () => {});
    const keyArn = `arn:aws:kms:us-east-1:123456789012:key/${copy.keyLogicalId}`;
    const kms = new LocalKms([keyArn], iam);
    await kms.listen();
    kmsServers.push(kms);
    const host = iam.principalNamed("orders database hosts");
    return {
      kms,
      keyArn,
      env: { AWS_ACCESS_KEY_ID: host.accessKeyId, AWS_SECRET_ACCESS_KEY: host.secretAccessKey },
    };
  };
  const configWith = (name: string, changes: Record<string, unknown>) => {
    const file = path.join(scratch.dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ ...config, ...changes }), { mode: 0o600 });
    return file;
  };
  const doctorOf = (file: string, env: NodeJS.ProcessEnv = hostEnv) =>
    agent(["doctor", "--config", file], env);

  beforeAll(async () => {
    const bundle = path.join(scratch.dir, "rewind-agent.mjs");
    writeFileSync(bundle, "// stand-in\n");
    synthesized = synthesizeControlPlane(scratch.dir, bundle);
    // S3 behind the template's IAM: the host role writes its prefix and may not delete.
    s3 = await S3Server.start({
      storageDir: `${scratch.dir}/s3`,
      buckets: [BUCKET],
      rules: { iam: new SandboxIam(sandboxIamModel(synthesized, BUCKET), () => {}).model },
      log: () => {},
    });
    server = await MariaDbServer.start({ baseDir: `${scratch.dir}/server`, serverId: 801 });
    noBinlog = await MariaDbServer.start({
      baseDir: `${scratch.dir}/no-binlog`,
      serverId: 802,
      extraConfig: ["skip-log-bin"],
    });
    const { kms, keyArn, env } = await kmsFor();
    // The host's SSM Agent (a stand-in answering -version) and node 22 on PATH, as on a real host.
    hostEnv = { ...env, PATH: `${ssmAgentShim(scratch.dir)}:${process.env.PATH}` };
    ({ configFile, config, secrets } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-801",
      kms: { keyArn, endpoint: kms.endpoint },
    }));
  }, 180_000);

  afterAll(async () => {
    for (const kms of kmsServers) kms.close();
    await noBinlog?.destroy();
    await server?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("passes on a host set up as the README says, listing what it checked", async () => {
    const run = await doctorOf(configFile);
    expect(run.exitCode, run.stderr).toBe(0);
    const { checks } = (run.output?.result ?? { checks: [] }) as { checks: { check: string; ok: boolean }[] };
    expect(checks.map((c) => c.check)).toEqual([
      "SSM Agent",
      "node",
      "database",
      "binlog settings",
      "backup tool",
      "zstd",
      "mbstream",
      "mariadb-binlog",
      "mariadb",
      "mariadb-dump",
      "data key",
      "S3",
      "server_id",
      "work space",
    ]);
    expect(checks.every((c) => c.ok)).toBe(true);
  });

  it("a missing grant: names the privilege and says to run users ensure", async () => {
    await server.query("REVOKE PROCESS ON *.* FROM 'rewind_backup'@'localhost'");
    try {
      const run = await doctorOf(configFile);
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.name).toBe("ConfigInvalid");
      expect(run.output?.error?.message).toMatch(
        /database: the backup account lacks PROCESS ON \*\.\*; run `rewind-agent users ensure` on the primary/,
      );
      // The other checks still ran: only one problem.
      expect(run.output?.error?.message).toMatch(/^doctor found 1 problem/);
    } finally {
      await server.query("GRANT PROCESS ON *.* TO 'rewind_backup'@'localhost'");
    }
  });

  it("binary logging off: says so and how to turn it on", async () => {
    await setUpLocalAgent({
      dir: `${scratch.dir}/agent-no-binlog`,
      server: noBinlog,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-802",
      secrets,
    });
    const file = configWith("no-binlog", { connection: { socket: noBinlog.socket } });
    const run = await doctorOf(file);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.message).toMatch(/binary logging is off.*; set log_bin/);
  });

  it("a backup tool of another version than the server: names both", async () => {
    const bin = path.join(scratch.dir, "old-tools");
    mkdirSync(bin, { recursive: true });
    const fake = path.join(bin, "mariabackup");
    writeFileSync(
      fake,
      "#!/bin/sh\necho 'mariabackup based on MariaDB server 10.6.12-MariaDB Linux (x86_64)' >&2\n",
    );
    chmodSync(fake, 0o755);
    const run = await doctorOf(configFile, { ...hostEnv, PATH: `${bin}:${process.env.PATH}` });
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.message).toMatch(/backup tool: .*10\.6\.12.*10\.11/);
  });

  it("an instance role without the data key statement: names the policy to attach", async () => {
    const { kms, keyArn, env } = await kmsFor((s) =>
      removeStatement(s.template, "ordersHostPolicy", "DataKeys"),
    );
    const file = configWith("no-key", { kmsEndpoint: kms.endpoint, encryption: { kmsKeyId: keyArn } });
    const run = await doctorOf(file, env);
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.message).toMatch(
      /data key: .*; attach the stack's rewind-host-orders managed policy/,
    );
  });

  it("an SSM Agent older than the document needs: names both versions and how to update", async () => {
    const old = ssmAgentShim(path.join(scratch.dir, "old-ssm"), "3.2.582.0");
    const run = await doctorOf(configFile, { ...hostEnv, PATH: `${old}:${process.env.PATH}` });
    expect(run.exitCode).toBe(1);
    expect(run.output?.error?.message).toMatch(
      /SSM Agent: SSM Agent 3\.2\.582\.0; update amazon-ssm-agent to 3\.3\.2746\.0 or later/,
    );
    expect(run.output?.error?.message).toMatch(/^doctor found 1 problem/);
  });

  it("statement-based binary logging: names the setting and what to set", async () => {
    await server.query("SET GLOBAL binlog_format = 'STATEMENT'");
    try {
      const run = await doctorOf(configFile);
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.message).toMatch(
        /binlog settings: binlog_format is STATEMENT: .*; set binlog_format=ROW in the server's config/,
      );
      expect(run.output?.error?.message).toMatch(/^doctor found 1 problem/);
    } finally {
      await server.query("SET GLOBAL binlog_format = 'ROW'");
    }
  });

  it("an instance role that may delete in the bucket: says to attach only the host policy", async () => {
    // The same bucket without the template's IAM: every request is allowed, deletes too.
    const open = await S3Server.start({
      storageDir: `${scratch.dir}/s3-open`,
      buckets: [BUCKET],
      log: () => {},
    });
    try {
      const run = await doctorOf(configWith("open-s3", { s3Endpoint: open.endpoint }));
      expect(run.exitCode).toBe(1);
      expect(run.output?.error?.message).toMatch(
        /S3: the instance role may delete objects in s3:\/\/[^ ]+\/orders\/; give the instance role only the stack's rewind-host-orders policy/,
      );
    } finally {
      await open.stop();
    }
  });

  it("the install association runs it on every host and records it: list shows the host that fails, with its fix", async () => {
    const installOn = (file: string, name: string) =>
      installAgent(`${scratch.dir}/${name}`, file, { env: hostEnv, noAccounts: true });
    const good = await installOn(configFile, "install-good");
    expect(good.exitCode, good.stderr).toBe(0);
    expect(good.output?.result?.doctor).toEqual({ ok: true, failed: [] });
    // A second host of the cluster with binary logging off: installed all the same, and seen.
    const broken = configWith("install-no-binlog", {
      host: "db-802",
      connection: { socket: noBinlog.socket },
    });
    const bad = await installOn(broken, "install-bad");
    expect(bad.exitCode, bad.stderr).toBe(0);
    expect(bad.output?.result?.doctor).toMatchObject({
      ok: false,
      failed: [{ check: "database", ok: false, found: expect.stringMatching(/binary logging is off/) }],
    });

    const listed = await agent(["list", "--config", configFile], hostEnv);
    expect(listed.exitCode, listed.stderr).toBe(0);
    const hosts = listed.output?.result?.hosts as {
      host: string;
      ok: boolean;
      stale: boolean;
      failed: { fix?: string }[];
    }[];
    expect(hosts.map(({ host, ok, stale }) => ({ host, ok, stale }))).toEqual([
      { host: "db-801", ok: true, stale: false },
      { host: "db-802", ok: false, stale: false },
    ]);
    expect(hosts[1]!.failed[0]!.fix).toMatch(/set log_bin/);
    // A third host whose server has db-801's server_id: named, with the fix.
    const twin = await doctorOf(configWith("twin", { host: "db-803" }));
    expect(twin.exitCode).toBe(1);
    expect(twin.output?.error?.message).toMatch(
      /server_id: server_id 801 is also db-801's; give each server of the cluster its own server_id/,
    );
    expect(listed.stderr).toMatch(
      /db-802: FAILS 1 check\(s\)[^\n]*\n\s+database: binary logging is off.*fix: .*log_bin/,
    );
  });
});
