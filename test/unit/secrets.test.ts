import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../host-agent/config.js";
import { fetchCredentials } from "../../host-agent/secrets.js";

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
