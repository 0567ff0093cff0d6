import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { clusterSettings, readSettings } from "../../../lambdas/lib/settings.js";

describe("a cluster's settings, as the Lambdas read them", () => {
  const settings = readSettings({ REWIND_BUCKET: "b", REWIND_CLUSTER_PARAMETERS: "/rewind/clusters/" });
  const ssm = mockClient(SSMClient);
  const client = new SSMClient({ region: "us-east-1" });

  it("come from the cluster's SSM parameter, read once", async () => {
    ssm.on(GetParameterCommand, { Name: "/rewind/clusters/orders" }).resolves({
      Parameter: {
        Name: "/rewind/clusters/orders",
        Value: JSON.stringify({
          name: "orders",
          engine: "mariadb",
          sourcePolicy: "primary",
          maxReplicaLagSeconds: 9,
        }),
      },
    });
    const first = await clusterSettings(settings, "orders", client);
    const again = await clusterSettings(settings, "orders", client);
    expect(first).toEqual({
      name: "orders",
      engine: "mariadb",
      sourcePolicy: "primary",
      maxReplicaLagSeconds: 9,
    });
    expect(again).toBe(first);
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(1);
  });

  it("a cluster the deployment lacks is the input's mistake, named with its parameter", async () => {
    const missing = new Error("Parameter /rewind/clusters/billing not found.");
    missing.name = "ParameterNotFound";
    ssm.on(GetParameterCommand, { Name: "/rewind/clusters/billing" }).rejects(missing);
    await expect(clusterSettings(settings, "billing", client)).rejects.toMatchObject({
      name: "UnknownCluster",
      message: expect.stringContaining("no SSM parameter /rewind/clusters/billing"),
    });
  });
});
