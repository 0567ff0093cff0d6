import { ErrorNames, RewindError } from "./errors.js";

/**
 * Times to the microsecond: MySQL records when each transaction committed in microseconds, so a
 * restore target can name one exactly. JavaScript dates stop at milliseconds, hence integers.
 */
const ISO = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)$/;

/** Microseconds since the epoch of an ISO time with a zone; null when it is not one. */
export function parseMicros(text: string): number | null {
  const match = ISO.exec(text.trim());
  if (!match) return null;
  const millis = Date.parse(`${match[1]}${match[3]}`);
  if (Number.isNaN(millis)) return null;
  const fraction = (match[2] ?? "").padEnd(6, "0").slice(0, 6);
  return millis * 1000 + Number(fraction);
}

export function requireMicros(text: string, what: string): number {
  const micros = parseMicros(text);
  if (micros === null)
    throw new RewindError(ErrorNames.planRefused, `${what} "${text}" is not an ISO time with a zone`);
  return micros;
}

/** As `toISOString()` prints it (`….363Z`), with six digits when there are microseconds (`….363161Z`). */
export function formatMicros(micros: number): string {
  const seconds = Math.floor(micros / 1e6);
  const fraction = micros - seconds * 1e6;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  return fraction % 1000 === 0
    ? `${base}.${String(fraction / 1000).padStart(3, "0")}Z`
    : `${base}.${String(fraction).padStart(6, "0")}Z`;
}

export const secondOf = (micros: number): number => Math.floor(micros / 1e6);
