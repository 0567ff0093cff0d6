import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { AgentStatus } from "../../core/agent-output.js";
import { PlannedRestore } from "../../core/store/planned-restore.js";
import { BackupInput, RestoreInput, VerifyInput } from "../../lambdas/lib/inputs.js";
import { type AslDefinition, stateMachineDefinitions } from "../../sandbox/state-machine-definitions.js";
import { synthTemplate } from "../infra/synth.js";

/** The keys of a zod object, through refinements. */
function keysOf(schema: z.ZodType): string[] {
  const def = (schema as unknown as { def: { shape?: Record<string, unknown>; in?: z.ZodType } }).def;
  if (def.shape) return Object.keys(def.shape);
  if (def.in) return keysOf(def.in);
  return Object.keys((schema as unknown as { shape: Record<string, unknown> }).shape);
}

interface Read {
  readonly state: string;
  readonly path: string;
}

/** Every JSONPath a definition reads state through, and every top-level key its steps write. */
function pathsOf(definition: AslDefinition): { reads: Read[]; writes: Set<string> } {
  const reads: Read[] = [];
  const writes = new Set<string>();
  const read = (state: string, value: unknown) => {
    if (typeof value !== "string") return;
    for (const match of value.matchAll(/(?<![$\w])\$\.[A-Za-z0-9_.]+/g))
      reads.push({ state, path: match[0] });
  };
  const parameters = (state: string, value: unknown) => {
    if (value && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) {
        if (key.endsWith(".$")) read(state, inner);
        else parameters(state, inner);
      }
    }
  };
  const choice = (state: string, rule: Record<string, unknown>) => {
    read(state, rule.Variable);
    for (const inner of [...((rule.And ?? rule.Or ?? []) as Record<string, unknown>[]), rule.Not])
      if (inner) choice(state, inner as Record<string, unknown>);
  };
  for (const [name, state] of Object.entries(definition.States)) {
    parameters(name, state.Parameters);
    for (const field of ["InputPath", "OutputPath", "ErrorPath", "CausePath"]) read(name, state[field]);
    for (const rule of (state.Choices ?? []) as Record<string, unknown>[]) choice(name, rule);
    for (const path of [state.ResultPath, ...(state.Catch ?? []).map((c) => c.ResultPath)])
      if (typeof path === "string" && path.startsWith("$.")) writes.add(path.slice(2).split(".")[0]!);
  }
  return { reads, writes };
}

/** What a state machine's state holds at the top, and the fields of those with a schema. */
const SHAPES: Record<string, { input: string[]; fields: Record<string, string[]> }> = {
  "Rewind-Backup": {
    // SelectSource replaces the state with the input, the source it chose and the hosts it asked.
    input: [...keysOf(BackupInput), "source", "hosts"],
    fields: {},
  },
  "Rewind-Restore": {
    input: keysOf(RestoreInput),
    fields: { plan: keysOf(PlannedRestore), health: keysOf(AgentStatus), error: ["Error", "Cause"] },
  },
  "Rewind-RestoreDrill": {
    input: ["cluster"],
    fields: { plan: keysOf(PlannedRestore), error: ["Error", "Cause"] },
  },
};

describe("the state machines' JSONPaths (infra/state-paths.ts) against the shapes they read", () => {
  const definitions = stateMachineDefinitions(synthTemplate().toJSON() as never);

  it.each(Object.keys(SHAPES))("%s reads only what its input or an earlier step holds", (machine) => {
    const definition = definitions[machine];
    expect(definition, `no ${machine} in the template`).toBeDefined();
    const { reads, writes } = pathsOf(definition!);
    expect(reads.length).toBeGreaterThan(3);
    const shape = SHAPES[machine]!;
    for (const { state, path } of reads) {
      const [top, field] = path.slice(2).split(".");
      expect([...shape.input, ...writes], `${machine}.${state} reads ${path}`).toContain(top);
      const known = shape.fields[top!];
      if (known && field) expect(known, `${machine}.${state} reads ${path}`).toContain(field);
    }
  });

  it("hands the Verify Lambda only fields of its input", () => {
    const verifyFields = keysOf(VerifyInput);
    for (const [machine, definition] of Object.entries(definitions)) {
      for (const [name, state] of Object.entries(definition.States)) {
        if (!/^Verify/.test(name)) continue;
        const payload = (state.Parameters?.Payload ?? {}) as Record<string, unknown>;
        for (const key of Object.keys(payload))
          expect(verifyFields, `${machine}.${name} sends ${key}`).toContain(key.replace(/\.\$$/, ""));
      }
    }
  });
});
