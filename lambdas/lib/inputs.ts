import type { z } from "zod";
import { InputInvalid } from "./errors.js";

/** The state machines' inputs live in core (core/contracts/state-machine-inputs.ts); infra types its JSONPaths with them. */
export * from "../../core/contracts/state-machine-inputs.js";

/** Parses a Lambda's input, failing with InputInvalid naming every field to fix. */
export function parseInput<T extends z.ZodType>(schema: T, event: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(event);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join(".") || "input"}: ${issue.message}`);
  throw new InputInvalid(`the ${what} input is invalid: ${problems.join("; ")}`);
}
