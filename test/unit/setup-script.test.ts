import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { scratchDir } from "../support.js";

/**
 * scripts/setup.sh run in a copy of the repository, with a PATH of its own: a stub apt-get that
 * records its calls (and "installs" stub tools), a stub `id`, and none of the database tools.
 */
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../scripts/setup.sh");

describe("the installer (scripts/setup.sh)", () => {
  const scratch = scratchDir("setup");
  afterAll(() => scratch.remove());
  let runs = 0;

  function run(options: {
    uid?: number;
    policyExists?: boolean;
    aptFails?: "update" | "install";
    toolsPresent?: boolean;
  }) {
    const dir = path.join(scratch.dir, `run-${runs++}`);
    const repo = path.join(dir, "repo");
    const bin = path.join(dir, "bin");
    mkdirSync(path.join(repo, "scripts"), { recursive: true });
    mkdirSync(path.join(repo, "node_modules", ".bin"), { recursive: true });
    mkdirSync(bin);
    copyFileSync(SCRIPT, path.join(repo, "scripts", "setup.sh"));
    // npm dependencies already installed: the lock is older than node_modules' copy of it.
    writeFileSync(path.join(repo, "package-lock.json"), "{}");
    utimesSync(path.join(repo, "package-lock.json"), new Date(2020, 1, 1), new Date(2020, 1, 1));
    writeFileSync(path.join(repo, "node_modules", ".package-lock.json"), "{}");
    writeFileSync(path.join(repo, "node_modules", ".bin", "node"), "#!/bin/sh\n", { mode: 0o755 });
    for (const tool of ["dirname", "chmod", "rm"]) symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
    const stub = (name: string, body: string) =>
      writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    stub("id", `echo ${options.uid ?? 0}`);
    const log = path.join(dir, "apt.log");
    const policy = path.join(dir, "policy-rc.d");
    const tools = ["mariadbd", "mariabackup", "zstd"];
    stub(
      "apt-get",
      [
        `echo "$* policy=$([ -e ${policy} ] && echo present || echo absent)" >> ${log}`,
        `[ "$1" = "${options.aptFails ?? "none"}" ] && { echo "E: stub failure" >&2; exit 100; }`,
        `if [ "$1" = install ]; then for t in ${tools.join(" ")}; do printf '#!/bin/sh\\n' > ${bin}/$t; /bin/chmod +x ${bin}/$t; done; fi`,
        "exit 0",
      ].join("\n"),
    );
    if (options.toolsPresent) for (const tool of tools) stub(tool, "exit 0");
    if (options.policyExists) writeFileSync(policy, "#!/bin/sh\nexit 0 # the image's own\n", { mode: 0o755 });
    const result = spawnSync("/bin/bash", [path.join(repo, "scripts", "setup.sh")], {
      env: { PATH: bin, REWIND_POLICY_RC: policy },
      encoding: "utf8",
    });
    return {
      status: result.status,
      stderr: result.stderr,
      apt: existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [],
      policy: existsSync(policy) ? readFileSync(policy, "utf8") : null,
    };
  }

  it("does nothing when the tools are there", () => {
    const result = run({ toolsPresent: true });
    expect(result).toMatchObject({ status: 0, apt: [], policy: null });
  });

  it("installs what is missing with the service kept from starting, and removes the policy it made", () => {
    const result = run({});
    expect(result.status, result.stderr).toBe(0);
    expect(result.apt).toEqual([
      "update -qq policy=present",
      "install -y -qq --no-install-recommends mariadb-server mariadb-backup zstd policy=present",
    ]);
    expect(result.policy).toBeNull();
  });

  it("succeeds with a policy-rc.d the image already had, and leaves it as it was", () => {
    const result = run({ policyExists: true });
    expect(result.status, result.stderr).toBe(0);
    expect(result.apt).toHaveLength(2);
    expect(result.policy).toBe("#!/bin/sh\nexit 0 # the image's own\n");
  });

  it("says which step failed and what to do, and cleans up", () => {
    const update = run({ aptFails: "update" });
    expect(update.status).toBe(1);
    expect(update.stderr).toMatch(
      /rewind setup: apt-get update failed \(see above\); check that Debian's package mirrors are reachable, or install mariadb-server mariadb-backup zstd by hand/,
    );
    expect(update.policy).toBeNull();
    const install = run({ aptFails: "install" });
    expect(install.status).toBe(1);
    expect(install.stderr).toMatch(/apt-get install mariadb-server mariadb-backup zstd failed/);
    const notRoot = run({ uid: 1000 });
    expect(notRoot.status).toBe(1);
    expect(notRoot.stderr).toMatch(
      /install them with: sudo apt-get install mariadb-server mariadb-backup zstd/,
    );
    expect(notRoot.apt).toEqual([]);
  });
});
