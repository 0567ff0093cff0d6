import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../host-agent/config.js";
import { fetchCredentials, forgetCachedSecret } from "../../host-agent/secrets.js";
import { scratchDir } from "../support.js";

const scratch = scratchDir("secrets");
afterAll(() => scratch.remove());

const secrets = mockClient(SecretsManagerClient);
const config = parseConfig(
  {
    cluster: "orders",
    engine: "mariadb",
    bucket: "rewind-backups",
    region: "eu-west-1",
    connection: { socket: "/run/mysqld/mysqld.sock" },
    secrets: { backup: "rewind/orders/backup" },
    encryption: { kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/abc" },
    stateDir: path.join(scratch.dir, "uncached"),
    secretCacheSeconds: 0,
  },
  "test",
);

describe("credentials from Secrets Manager", () => {
  beforeEach(() => secrets.reset());

  it("asks for the configured secret and reads username and password", async () => {
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: '{"username":"rewind_backup","password":"s3cr3t"}' });
    await expect(fetchCredentials(config, "rewind/orders/backup")).resolves.toEqual({
      username: "rewind_backup",
      password: "s3cr3t",
      cached: false,
    });
    expect(secrets.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({
      SecretId: "rewind/orders/backup",
    });
  });

  it("says what the secret must hold when it is malformed, without echoing it", async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"user":"x","pass":"hunter2"}' });
    const failure = fetchCredentials(config, "rewind/orders/backup");
    await expect(failure).rejects.toThrow(
      /secret rewind\/orders\/backup must hold \{"username": "…", "password": "…"\}/,
    );
    await expect(failure).rejects.not.toThrow(/hunter2/);
  });

  it("names the instance role when access is denied", async () => {
    secrets
      .on(GetSecretValueCommand)
      .rejects(Object.assign(new Error("User is not authorized"), { name: "AccessDeniedException" }));
    await expect(fetchCredentials(config, "rewind/orders/backup")).rejects.toMatchObject({
      name: "CredentialsRejected",
      message: expect.stringMatching(/check the instance role and the secret id/),
    });
  });
});

describe("the host's secret cache", () => {
  const cachedConfig = parseConfig(
    {
      cluster: "orders",
      engine: "mariadb",
      bucket: "rewind-backups",
      connection: { socket: "/run/mysqld/mysqld.sock" },
      secrets: { backup: "rewind/orders/backup" },
      encryption: { kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/abc" },
      stateDir: path.join(scratch.dir, "cached"),
      secretCacheSeconds: 600,
    },
    "test",
  );
  beforeEach(() => {
    secrets.reset();
    forgetCachedSecret(cachedConfig, "rewind/orders/backup");
    vi.useRealTimers();
  });

  it("asks Secrets Manager once per secretCacheSeconds, keeps the value root-only, and asks again when told to", async () => {
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: '{"username":"rewind_backup","password":"one"}' });
    await expect(fetchCredentials(cachedConfig, "rewind/orders/backup")).resolves.toMatchObject({
      password: "one",
      cached: false,
    });
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: '{"username":"rewind_backup","password":"two"}' });
    await expect(fetchCredentials(cachedConfig, "rewind/orders/backup")).resolves.toMatchObject({
      password: "one",
      cached: true,
    });
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    const dir = path.join(cachedConfig.stateDir, "secret-cache");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const [file] = readdirSync(dir);
    expect(file).not.toContain("orders");
    expect(statSync(path.join(dir, file!)).mode & 0o777).toBe(0o600);
    await expect(
      fetchCredentials(cachedConfig, "rewind/orders/backup", { fresh: true }),
    ).resolves.toMatchObject({
      password: "two",
      cached: false,
    });
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it("asks again once the cached value is older than secretCacheSeconds", async () => {
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: '{"username":"rewind_backup","password":"one"}' });
    await fetchCredentials(cachedConfig, "rewind/orders/backup");
    vi.useFakeTimers({ now: Date.now() + 601_000, toFake: ["Date"] });
    await expect(fetchCredentials(cachedConfig, "rewind/orders/backup")).resolves.toMatchObject({
      cached: false,
    });
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });
});
