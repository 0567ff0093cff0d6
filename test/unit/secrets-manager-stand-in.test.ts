import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxIam } from "../../sandbox/aws/iam.js";
import { LocalSecretsManager } from "../../sandbox/aws/secrets-manager.js";

/** The rules of Secrets Manager's versions that rotation depends on, as the stand-in models them. */
describe("the Secrets Manager stand-in's versions and rotation", () => {
  const stand = new LocalSecretsManager(new SandboxIam(undefined));
  let client: SecretsManagerClient;
  const name = "rewind/orders/accounts";
  const events: string[] = [];

  beforeAll(async () => {
    await stand.listen();
    client = new SecretsManagerClient({
      endpoint: stand.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
    });
    stand.put(name, { v: 1 });
  });
  afterAll(() => stand.close());

  it("labels the new version AWSPENDING before createSecret, with no value yet, and refuses a second rotation while one is pending", async () => {
    stand.rotation = async (_arn, event) => {
      events.push(event.Step);
    };
    const { token } = stand.beginRotation(name);
    const described = await client.send(new DescribeSecretCommand({ SecretId: name }));
    expect(described.VersionIdsToStages?.[token]).toEqual(["AWSPENDING"]);
    await expect(
      client.send(
        new GetSecretValueCommand({ SecretId: name, VersionId: token, VersionStage: "AWSPENDING" }),
      ),
    ).rejects.toMatchObject({ name: "ResourceNotFoundException" });
    expect(() => stand.beginRotation(name)).toThrow(/previous rotation isn't complete/);

    // createSecret's put is idempotent by token; another value under the same token is refused.
    const put = () =>
      client.send(
        new PutSecretValueCommand({
          SecretId: name,
          ClientRequestToken: token,
          SecretString: '{"v":2}',
          VersionStages: ["AWSPENDING"],
        }),
      );
    await put();
    await put();
    await expect(
      client.send(
        new PutSecretValueCommand({ SecretId: name, ClientRequestToken: token, SecretString: '{"v":3}' }),
      ),
    ).rejects.toMatchObject({ name: "ResourceExistsException" });

    // finishSecret: moving AWSCURRENT needs the version that holds it named, and leaves AWSPREVIOUS behind.
    const current = Object.entries(stand.stages(name)).find(([, s]) => s.includes("AWSCURRENT"))![0];
    await expect(
      client.send(
        new UpdateSecretVersionStageCommand({
          SecretId: name,
          VersionStage: "AWSCURRENT",
          MoveToVersionId: token,
        }),
      ),
    ).rejects.toMatchObject({ name: "InvalidParameterException" });
    await client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: name,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: token,
        RemoveFromVersionId: current,
      }),
    );
    expect(stand.stages(name)[current]).toEqual(["AWSPREVIOUS"]);
    expect(stand.stages(name)[token]).toEqual(["AWSPENDING", "AWSCURRENT"]);
    expect(stand.current(name)).toEqual({ v: 2 });
    // Pending on the current version is no rotation in progress.
    await stand.rotate(name);
    expect(events).toEqual(["createSecret", "setSecret", "testSecret", "finishSecret"]);
  });
});
