import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { acquireLock } from "../../host-agent/lock.js";
import { waitFor } from "../../sandbox/processes.js";
import { scratchDir } from "../support.js";

const LOCK_MODULE = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../host-agent/lock.ts");

describe("the host lock", () => {
  const scratch = scratchDir("lock");
  afterAll(() => scratch.remove());

  /**
   * A process that tries the lock and says whether it got it. The one that gets it holds it until
   * the test says release (every other contender has answered by then).
   */
  function contender(dir: string, startAt: number): Promise<string> {
    // All contenders spin until the same instant, then reach for the lock together.
    const release = path.join(dir, "release");
    const script = `import { existsSync } from "node:fs";
import { acquireLock } from ${JSON.stringify(LOCK_MODULE)};
while (Date.now() < ${startAt});
let release;
try { release = acquireLock(${JSON.stringify(dir)}, "binlog-push.lock", "binlog-push"); }
catch (error) { console.log(error.name); process.exit(0); }
console.log("held");
const timer = setInterval(() => { if (existsSync(${JSON.stringify(release)})) { clearInterval(timer); release(); } }, 20);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    return new Promise((resolve) => child.once("close", () => resolve(out.trim())));
  }

  it("goes to exactly one of many agents that start at once", async () => {
    for (let round = 0; round < 3; round++) {
      const dir = path.join(scratch.dir, `round-${round}`);
      mkdirSync(dir, { recursive: true });
      const startAt = Date.now() + 2500;
      const outcomes: string[] = [];
      const runs = Array.from({ length: 8 }, () =>
        contender(dir, startAt).then((outcome) => {
          outcomes.push(outcome);
        }),
      );
      // The holder answers only after the release: wait for the other seven, then release.
      await waitFor("seven contenders to answer", async () => outcomes.length >= 7);
      writeFileSync(path.join(dir, "release"), "");
      await Promise.all(runs);
      expect(
        outcomes.filter((outcome) => outcome === "held"),
        outcomes.join(","),
      ).toHaveLength(1);
      expect(outcomes.filter((outcome) => outcome === "AgentBusy")).toHaveLength(7);
    }
  });

  it("is taken over from an agent that died, and released for the next", () => {
    const dir = path.join(scratch.dir, "stale");
    const first = acquireLock(dir, "agent.lock", "backup");
    expect(() => acquireLock(dir, "agent.lock", "restore")).toThrow(/this host is busy: backup \(pid \d+\)/);
    first();
    writeFileSync(path.join(dir, "agent.lock"), JSON.stringify({ pid: 2 ** 22 + 17, task: "backup" }));
    const taken = acquireLock(dir, "agent.lock", "restore");
    taken();
    expect(existsSync(path.join(dir, "agent.lock"))).toBe(false);
  });
});
