import { describe, expect, it } from "vitest";
import {
  CLUSTER_PARAMETERS,
  ClusterSettings,
  clusterParameterName,
  SETTINGS_ENV,
  settingsFromEnv,
  settingsToEnv,
} from "../../core/contracts/lambda-settings.js";
import { resolveIntrinsics, type Template } from "../../sandbox/state-machine-definitions.js";
import { synthTemplate } from "./synth.js";

/**
 * The boundary between the stack and the Lambdas: what infra writes into every function's
 * environment is what the Lambdas parse, through the one schema in core/contracts.
 */
describe("the Lambdas' settings contract", () => {
  const config = {
    clusters: [
      { name: "orders", engine: "mariadb" },
      { name: "billing", engine: "mysql", sourcePolicy: "primary", maxReplicaLagSeconds: 60 },
    ],
    retention: { fullBackups: 3, pitrDays: 5 },
  };
  const template = synthTemplate(config).toJSON() as Template;
  const functions = Object.values(template.Resources).filter((r) => r.Type === "AWS::Lambda::Function");

  it("every function's environment parses into the settings the config says", () => {
    expect(functions.length).toBeGreaterThanOrEqual(5);
    for (const fn of functions) {
      const env = resolveIntrinsics(
        (fn.Properties!.Environment as { Variables: Record<string, unknown> }).Variables,
        template,
      ) as Record<string, string>;
      const settings = settingsFromEnv(env);
      expect(settings.clusterParameters).toBe(CLUSTER_PARAMETERS);
      // pitrDays 5 + a day between nightly full backups + a day.
      expect(settings.retention).toEqual({ fullBackups: 3, pitrDays: 5, objectLockDays: 7 });
      expect(settings.documentName).toBe("Rewind-RunAgent");
      expect(settings.bucket).toMatch(/\S/);
      // The REWIND_* names exist once, in core/contracts.
      const names = new Set<string>(Object.values(SETTINGS_ENV));
      for (const name of Object.keys(env).filter((each) => each.startsWith("REWIND_")))
        expect(names.has(name), name).toBe(true);
    }
  });

  it("each cluster's settings are an SSM parameter the Lambdas that take a cluster may read, and the environment does not grow with the clusters", () => {
    const parameters = Object.values(template.Resources).filter((r) => r.Type === "AWS::SSM::Parameter");
    const byName = Object.fromEntries(
      parameters.map((p) => [
        p.Properties!.Name as string,
        ClusterSettings.parse(JSON.parse(p.Properties!.Value as string)),
      ]),
    );
    expect(byName).toEqual({
      [clusterParameterName("orders")]: {
        name: "orders",
        engine: "mariadb",
        sourcePolicy: "prefer-replica",
        maxReplicaLagSeconds: 300,
      },
      [clusterParameterName("billing")]: {
        name: "billing",
        engine: "mysql",
        sourcePolicy: "primary",
        maxReplicaLagSeconds: 60,
      },
    });
    const envOf = (t: Template) =>
      Object.values(t.Resources)
        .filter((r) => r.Type === "AWS::Lambda::Function")
        .map((fn) => JSON.stringify((fn.Properties!.Environment as { Variables: unknown }).Variables));
    const many = synthTemplate({
      ...config,
      clusters: Array.from({ length: 25 }, (_, i) => ({ name: `c${i}`, engine: "mariadb" })),
    }).toJSON() as Template;
    expect(envOf(many).map((env) => env.length)).toEqual(envOf(template).map((env) => env.length));
  });

  it("round-trips, and a malformed environment is refused", () => {
    const settings = {
      bucket: "b",
      clusterParameters: "/rewind/clusters/",
      retention: { fullBackups: 1, pitrDays: 1 },
      documentName: "Rewind-RunAgent",
      // Not the default: a setting the reader drops would come back as the default.
      hostTag: "staging:cluster",
    };
    expect(settingsFromEnv(settingsToEnv(settings))).toEqual(settings);
    expect(() =>
      settingsFromEnv({ ...settingsToEnv(settings), [SETTINGS_ENV.retention]: '{"pitrDays":0}' }),
    ).toThrow();
  });
});
