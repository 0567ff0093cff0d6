import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountsSecretName } from "../../core/contracts/accounts.js";
import { BACKUP_PRIVILEGES } from "../../core/privileges.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import type { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";
import { accountOf, setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { waitFor } from "../../sandbox/processes.js";
import { agent, BUCKET, backupIdOf, installAgent, scratchDir } from "../support.js";

/** `users ensure` on a real MariaDB primary and replica, with the accounts secret in the stand-in. */
describe("the cluster's accounts: rewind-agent users ensure", () => {
  const scratch = scratchDir("accounts");
  let s3: S3Server;
  let primary: MariaDbServer;
  let replica: MariaDbServer;
  let secrets: LocalSecretsManager;
  let config: Record<string, unknown>;
  let configFile: string;
  let replicaConfigFile: string;
  const secretId = accountsSecretName("orders");

  const ensure = async (file = configFile) => {
    const run = await agent(["users", "ensure", "--config", file]);
    return run;
  };
  const grantsOf = async (server: MariaDbServer, user: string, host: string) =>
    (await server.query(`SHOW GRANTS FOR '${user}'@'${host}'`))
      .map((row) => row[0] ?? "")
      .map((line) => line.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ""));

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    primary = await MariaDbServer.start({ baseDir: `${scratch.dir}/primary`, serverId: 701 });
    replica = await MariaDbServer.start({ baseDir: `${scratch.dir}/replica`, serverId: 702 });
    const repl = { user: "bootstrap_repl", password: "bootstrap-password" };
    await primary.createUser(repl, "REPLICATION SLAVE");
    await replica.replicateFrom(primary, repl);
    // The secret as the stack creates it, and no account on the servers yet.
    ({ config, configFile, secrets } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: primary,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-701",
      accounts: "none",
    }));
    replicaConfigFile = `${scratch.dir}/agent/replica.json`;
    writeFileSync(replicaConfigFile, JSON.stringify({ ...config, connection: { socket: replica.socket } }));
  });

  afterAll(async () => {
    await replica?.destroy();
    await primary?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("creates every account with exactly the privileges core/privileges.ts lists, as root over the socket", async () => {
    const run = await ensure();
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.output?.result).toMatchObject({
      secret: secretId,
      changed: true,
      accounts: [
        { account: "backup", user: "rewind_backup", changes: ["created", "grants"] },
        { account: "replication", user: "rewind_repl", changes: ["created", "grants"] },
        { account: "admin", user: "rewind_admin", changes: ["created", "grants"] },
      ],
    });
    expect(await grantsOf(primary, "rewind_backup", "localhost")).toEqual([
      "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `rewind_backup`@`localhost`",
    ]);
    expect(await grantsOf(primary, "rewind_repl", "%")).toEqual([
      "GRANT REPLICATION SLAVE ON *.* TO `rewind_repl`@`%`",
    ]);
    expect(await grantsOf(primary, "rewind_admin", "localhost")).toEqual([
      "GRANT ALL PRIVILEGES ON *.* TO `rewind_admin`@`localhost` WITH GRANT OPTION",
    ]);
    // The passwords are the secret's: each account logs in with its own.
    for (const account of ["backup", "admin"] as const) {
      const { username, password } = accountOf({ secrets, accountsSecretId: secretId }, account);
      expect(await primary.scalarAs({ user: username, password }, "SELECT CURRENT_USER()")).toBe(
        `${username}@localhost`,
      );
    }
    const repl = accountOf({ secrets, accountsSecretId: secretId }, "replication");
    expect(repl.password).not.toBe(accountOf({ secrets, accountsSecretId: secretId }, "backup").password);
  });

  it("changes nothing on a second run, and now logs in as the admin account", async () => {
    const run = await ensure();
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.output?.result).toMatchObject({ changed: false });
    const accounts = (run.output?.result?.accounts ?? []) as { changes: string[] }[];
    expect(accounts).toHaveLength(3);
    for (const account of accounts) expect(account.changes).toEqual([]);
    expect(run.stderr).not.toMatch(/root over the socket/);
  });

  it("takes a backup with the backup account it made", async () => {
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
  });

  it("a backup without a privilege the backup account needs fails naming it; ensure grants it back", async () => {
    await primary.query("REVOKE RELOAD ON *.* FROM 'rewind_backup'@'localhost'");
    const failed = await agent(["backup", "--type", "full", "--config", configFile]);
    expect(failed.exitCode).not.toBe(0);
    expect(failed.output?.error?.message).toMatch(
      /the backup account lacks RELOAD ON \*\.\*, which the backup tool needs; run `rewind-agent users ensure` on the primary/,
    );
    const run = await ensure();
    expect(run.output?.result).toMatchObject({
      changed: true,
      accounts: [{ account: "backup", changes: ["grants"], granted: ["RELOAD ON *.*"], revoked: [] }, {}, {}],
    });
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
  });

  it("revokes a privilege the account must not have, and sets a password changed in the secret", async () => {
    await primary.query("GRANT SELECT ON *.* TO 'rewind_backup'@'localhost'");
    const current = secrets.current(secretId) as Record<string, unknown>;
    secrets.put(secretId, {
      ...current,
      backup: { username: "rewind_backup", password: "set-by-an-operator-0123456789" },
    });
    const run = await ensure();
    expect(run.output?.result).toMatchObject({
      accounts: [{ account: "backup", changes: ["password", "grants"], revoked: ["SELECT ON *.*"] }, {}, {}],
    });
    expect(await grantsOf(primary, "rewind_backup", "localhost")).toEqual([
      "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `rewind_backup`@`localhost`",
    ]);
    // The agent's cached copy of the secret is refused once, then read again.
    backupIdOf(await agent(["backup", "--type", "full", "--config", configFile]));
  });

  it("refuses on a replica, naming its primary; the replica has the accounts through replication", async () => {
    await waitFor(
      "the replica to catch up",
      async () => (await replica.gtidBinlogPos()) === (await primary.gtidBinlogPos()),
    );
    const run = await ensure(replicaConfigFile);
    expect(run.exitCode).not.toBe(0);
    expect(run.output?.error?.message).toContain(`replica of 127.0.0.1:${primary.port}`);
    expect(run.output?.error?.message).toContain("run `rewind-agent users ensure` on that primary");
    expect(await grantsOf(replica, "rewind_backup", "localhost")).toEqual(
      await grantsOf(primary, "rewind_backup", "localhost"),
    );
  });

  it("bootstraps as an account given on stdin where neither the admin account nor root over the socket logs in", async () => {
    // A server reached over TCP, where root (unix_socket) cannot log in, as on a MySQL whose root
    // has a password; a DBA account with one, and no admin account yet.
    const tcpConfig = `${scratch.dir}/agent/tcp.json`;
    writeFileSync(
      tcpConfig,
      JSON.stringify({ ...config, connection: { host: "127.0.0.1", port: primary.port } }),
    );
    const dba = { user: "bootstrap_dba", password: "dba-Pa55 word'\"" };
    await primary.query(
      `CREATE USER '${dba.user}'@'%' IDENTIFIED BY '${dba.password.replace(/'/g, "''")}'; GRANT ALL ON *.* TO '${dba.user}'@'%' WITH GRANT OPTION; DROP USER 'rewind_admin'@'localhost'`,
    );

    const refused = await agent(["users", "ensure", "--config", tcpConfig]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.output?.error).toMatchObject({ name: "CredentialsRejected" });
    expect(refused.output?.error?.message).toContain("--login-user root --login-password-stdin");

    const wrong = await agent(
      ["users", "ensure", "--login-user", dba.user, "--login-password-stdin", "--config", tcpConfig],
      undefined,
      "not-the-password\n",
    );
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.output?.error?.message).toContain(`${dba.user} (stdin)`);

    const run = await agent(
      ["users", "ensure", "--login-user", dba.user, "--login-password-stdin", "--config", tcpConfig],
      undefined,
      `${dba.password}\n`,
    );
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.output?.result?.accounts).toContainEqual(
      expect.objectContaining({ account: "admin", changes: ["created", "grants"] }),
    );
    // The password never reached the agent's output or logs.
    for (const text of [wrong.stderr, run.stderr, JSON.stringify(wrong.output), JSON.stringify(run.output)])
      expect(text).not.toContain("dba-Pa55");
    // From now on the admin account (@localhost: over the socket) works, no login needed.
    expect((await ensure()).output?.result?.changed).toBe(false);
  });

  it("install (the association, on every tagged host) ensures the accounts on the primary and skips a replica", async () => {
    const installOn = (file: string, name: string) => installAgent(`${scratch.dir}/${name}`, file);
    const onPrimary = await installOn(configFile, "primary-install");
    expect(onPrimary.exitCode, onPrimary.stderr).toBe(0);
    expect(onPrimary.output?.result?.accounts).toMatchObject({ changed: false });
    const onReplica = await installOn(replicaConfigFile, "replica-install");
    expect(onReplica.exitCode, onReplica.stderr).toBe(0);
    expect(onReplica.output?.result?.accounts).toEqual({
      secret: secretId,
      changed: false,
      accounts: [],
      skipped: `a replica of 127.0.0.1:${primary.port}`,
    });
  });
});

/** A deployment from before the accounts secret: one secret per user, accounts made by hand. */
describe("upgrading from one secret per user", () => {
  const scratch = scratchDir("accounts-upgrade");
  let s3: S3Server;
  let server: MariaDbServer;
  let configFile: string;

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    server = await MariaDbServer.start({ baseDir: `${scratch.dir}/server`, serverId: 711 });
    const old = { user: "rewind_backup", password: "the-old-hand-made-password" };
    await server.createUser(old, BACKUP_PRIVILEGES.mariadb.global);
    const setup = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-711",
      accounts: "none",
      // The host's config still names the old secret; the stack update added the accounts secret.
      extra: { secrets: { backup: "rewind/orders/backup" } },
    });
    setup.secrets.put("rewind/orders/backup", { username: old.user, password: old.password });
    configFile = setup.configFile;
  });

  afterAll(async () => {
    await server?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("backs up with the old secret until users ensure has run, then with the accounts secret", async () => {
    const before = await agent(["backup", "--type", "full", "--config", configFile]);
    backupIdOf(before);
    expect(before.stderr).toMatch(
      /the server refused the backup account of secret rewind\/orders\/accounts; trying/,
    );
    // No rotation is under way, so the old per-user secret is what works.
    expect(before.stderr).not.toMatch(/the server refused secret rewind\/orders\/backup/);
    const ensured = await agent(["users", "ensure", "--config", configFile]);
    expect(ensured.output?.result).toMatchObject({
      accounts: [
        { account: "backup", changes: ["password"] },
        { changes: ["created", "grants"] },
        { changes: ["created", "grants"] },
      ],
    });
    const after = await agent(["backup", "--type", "full", "--config", configFile]);
    backupIdOf(after);
    expect(after.stderr).not.toMatch(/trying secret/);
  });
});
