import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

interface LockEntry {
  readonly version?: string;
  readonly optionalDependencies?: Record<string, string>;
  readonly os?: string[];
  readonly cpu?: string[];
}

/**
 * `npm ci` installs exactly the lock, and on each platform needs the lock to list the optional
 * packages for it (biome's, esbuild's and rollup's native binaries): a lock written on one
 * platform without them installs only there. Every optional dependency of every locked package
 * must be locked, whatever its os and cpu.
 */
describe("the committed package-lock.json installs anywhere", () => {
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8")) as {
    packages: Record<string, LockEntry>;
  };
  /** Where npm resolves `name` from the package at `at`: its own node_modules, then upward. */
  const resolve = (at: string, name: string): LockEntry | undefined => {
    for (let dir = at; ; dir = dir.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, "")) {
      const entry = lock.packages[`${dir ? `${dir}/` : ""}node_modules/${name}`];
      if (entry || dir === "") return entry;
    }
  };

  it("locks every optional (platform) dependency of every package", () => {
    const missing: string[] = [];
    for (const [at, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {}))
        if (!resolve(at, name)) missing.push(`${at || "(root)"} → ${name}`);
    }
    expect(missing).toEqual([]);
  });

  it("has the native packages for linux-x64, linux-arm64 and macOS", () => {
    const platforms = Object.values(lock.packages).flatMap((entry) =>
      (entry.os ?? []).flatMap((os) => (entry.cpu ?? []).map((cpu) => `${os}-${cpu}`)),
    );
    for (const platform of ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"])
      expect(platforms, platform).toContain(platform);
  });
});
