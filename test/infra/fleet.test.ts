import { afterAll, describe, expect, it } from "vitest";
import { CLUSTER_STACKS } from "../../infra/cluster-stacks.js";
import { type FleetSynth, fleetClusterNames, quotaProblems, synthFleet } from "../../infra/fleet-report.js";
import { scratchDir } from "../support.js";

/**
 * A fleet in one deployment (issue 20): each cluster's resources live in one of the nested stacks
 * its name hashes to, so 1,000 clusters synthesize with every template under CloudFormation's
 * quotas, and adding a cluster changes its own nested stack only.
 */
describe("a fleet of clusters in one deployment", () => {
  const scratch = scratchDir("fleet");
  afterAll(() => scratch.remove());
  const synthesized = new Map<number, FleetSynth>();

  it.each([10, 100, 1000])(
    "synthesizes %i clusters offline with every stack under 500 resources and 1 MB",
    (count) => {
      const fleet = synthFleet(count, `${scratch.dir}/${count}`);
      synthesized.set(count, fleet);
      const largest = [...fleet.nested].sort((a, b) => b.resources - a.resources)[0]!;
      console.log(
        `${count} clusters: synth ${fleet.seconds.toFixed(1)} s; parent ${fleet.parent.resources} resources, ${Math.round(fleet.parent.bytes / 1024)} KiB; ${fleet.nested.length} nested stacks, the largest ${largest.resources} resources, ${Math.round(largest.bytes / 1024)} KiB, ${largest.parameters} parameters`,
      );
      expect(quotaProblems(fleet)).toEqual([]);
      expect(fleet.nested.length).toBeLessThanOrEqual(CLUSTER_STACKS);
      // Every cluster's 15 resources are in some nested stack; the parent holds one per nested stack.
      expect(fleet.nested.reduce((sum, t) => sum + t.resources, 0)).toBe(15 * count);
      expect(fleet.parent.resources).toBeLessThan(70 + fleet.nested.length);
      const everything = fleet.nested.map((t) => t.json).join("\n");
      for (const name of fleetClusterNames(count)) expect(everything).toContain(`"${name}"`);
    },
    180_000,
  );

  it("adding one cluster changes its own nested stack and nothing else of the deployment", () => {
    // The 100 clusters synthesized above, and the same with one more.
    const before = synthesized.get(100) ?? synthFleet(100, `${scratch.dir}/before`);
    const after = synthFleet([...fleetClusterNames(100), "payments"], `${scratch.dir}/after`);
    const byName = new Map(before.nested.map((t) => [t.name, t.json]));
    const changed = after.nested.filter((t) => byName.get(t.name) !== t.json).map((t) => t.name);
    expect(changed).toHaveLength(1);
    expect(after.nested.find((t) => t.name === changed[0])!.json).toContain('"payments"');
    // The parent's shared resources (policies, state machines, Lambdas' environment) are the same:
    // only the reference to that one nested stack's template differs.
    const shared = (json: string) => {
      const resources = JSON.parse(json).Resources as Record<string, { Type: string }>;
      return Object.fromEntries(
        Object.entries(resources).filter(([, r]) => r.Type !== "AWS::CloudFormation::Stack"),
      );
    };
    expect(shared(after.parent.json)).toEqual(shared(before.parent.json));
  }, 180_000);
});
