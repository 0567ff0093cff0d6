import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { STREAM_UNIT } from "../../host-agent/commands/install.js";
import { runAgent } from "../../sandbox/hosts/agent.js";
import { agent, scratchDir } from "../support.js";

describe("rewind-agent install", () => {
  const scratch = scratchDir("install");
  afterAll(() => scratch.remove());

  it("writes the binlog-stream unit (restarted on failure) and copies the bundle it runs from", async () => {
    const configFile = path.join(scratch.dir, "agent.json");
    const example = JSON.parse(readFileSync("examples/agent.json", "utf8"));
    writeFileSync(configFile, JSON.stringify({ ...example, stateDir: path.join(scratch.dir, "state") }));
    const unitDir = path.join(scratch.dir, "systemd");
    const installDir = path.join(scratch.dir, "opt");
    const run = await agent([
      "install",
      "--no-start",
      "--no-accounts",
      "--unit-dir",
      unitDir,
      "--install-dir",
      installDir,
      "--config",
      configFile,
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
    const bundle = path.join(installDir, "rewind-agent.mjs");
    expect(run.output?.result).toEqual({
      unit: path.join(unitDir, STREAM_UNIT),
      bundle,
      started: false,
      // The example config's host has no server or AWS here: the doctor's failures are reported
      // (and recorded for list where S3 allows), the install itself succeeds.
      doctor: {
        ok: false,
        failed: expect.arrayContaining([expect.objectContaining({ check: "database", ok: false })]),
      },
    });
    const unit = readFileSync(path.join(unitDir, STREAM_UNIT), "utf8");
    expect(unit).toContain(`ExecStart=${process.execPath} ${bundle} binlog-stream --config ${configFile}`);
    expect(unit).toMatch(/^Restart=always$/m);
    // A crash loop never leaves it dead: systemd never stops restarting it.
    expect(unit).toMatch(/^\[Unit\][^[]*^StartLimitIntervalSec=0$/m);
    expect(unit).toMatch(/^After=network-online.target mariadb.service$/m);
    expect(unit).toMatch(/^WantedBy=multi-user.target$/m);
    // The installed copy is a working agent.
    expect((await runAgent(bundle, ["--version"])).output).toMatchObject({ ok: true });
  });
});
