import { describe, expect, it } from "vitest";
import { ERRORS, ErrorNames, errorKind } from "../../core/errors.js";
import { XbstreamError } from "../../core/xbstream.js";
import { InputInvalid, NoEligibleSource, UnknownCluster } from "../../lambdas/lib/errors.js";
import { type AslDefinition, stateMachineDefinitions } from "../../sandbox/state-machine-definitions.js";
import { synthTemplate } from "../infra/synth.js";

/** Every ErrorEquals of every Retry and Catch in a state machine definition, nested states included. */
function matchedNames(definition: AslDefinition): string[] {
  const names: string[] = [];
  const visit = (states: Record<string, unknown>) => {
    for (const state of Object.values(states) as {
      Retry?: { ErrorEquals: string[] }[];
      Catch?: { ErrorEquals: string[] }[];
      Branches?: { States: Record<string, unknown> }[];
      Iterator?: { States: Record<string, unknown> };
    }[]) {
      for (const rule of [...(state.Retry ?? []), ...(state.Catch ?? [])]) names.push(...rule.ErrorEquals);
      for (const branch of state.Branches ?? []) visit(branch.States);
      if (state.Iterator) visit(state.Iterator.States);
    }
  };
  visit(definition.States as Record<string, unknown>);
  return names;
}

describe("one error table for the agent, the Lambdas and the state machines", () => {
  it("names each error once, with a hint, and exit code 2 only for a command line to fix", () => {
    const names = Object.values(ERRORS).map((kind) => kind.name);
    expect(new Set(names).size).toBe(names.length);
    for (const kind of Object.values(ERRORS)) {
      expect(kind.hint.length, kind.name).toBeGreaterThan(10);
      expect(kind.exitCode === 2, kind.name).toBe(kind.name === "UsageError");
    }
    expect(errorKind("AgentBusy")).toMatchObject({ retryable: true, exitCode: 1 });
    expect(errorKind("NoSuchError")).toBeUndefined();
  });

  it("holds the Lambdas' and the parsers' errors", () => {
    for (const error of [
      new InputInvalid("x"),
      new UnknownCluster("x"),
      new NoEligibleSource("x"),
      new XbstreamError("x"),
    ])
      expect(errorKind(error.name), error.name).toBeDefined();
  });

  it("is where every name a Retry or Catch rule matches comes from", () => {
    const definitions = stateMachineDefinitions(synthTemplate().toJSON() as never);
    const matched = Object.values(definitions).flatMap(matchedNames);
    expect(matched).toContain(ErrorNames.busy);
    // AWS's own names are dotted (States.Timeout, Lambda.ServiceException); every other one is ours.
    for (const name of matched)
      expect(name.includes(".") || errorKind(name) !== undefined, `${name} is not in core/errors.ts`).toBe(
        true,
      );
  });
});
