/** Replaced at bundle time by esbuild's `define`; the source tree reports "dev". */
declare const __REWIND_AGENT_VERSION__: string | undefined;

export const AGENT_VERSION = typeof __REWIND_AGENT_VERSION__ === "string" ? __REWIND_AGENT_VERSION__ : "dev";
