import { afterEach, describe, expect, it } from "vitest";
import type { HostChecks } from "../../core/contracts/host-checks.js";
import { hostChecksKey } from "../../core/layout.js";
import { readHostChecks } from "../../core/store/host-checks.js";
import { BUCKET, CLUSTER, fakeBucket } from "./lambdas/fake-bucket.js";

describe("hosts' doctor records, as list reads them", () => {
  const bucket = fakeBucket();
  afterEach(() => bucket.objects.clear());
  const location = { cluster: CLUSTER };
  const now = Date.parse("2026-12-07T12:00:00Z");
  const put = (host: string, body: string) => {
    bucket.objects.set(hostChecksKey(location, host), { body, size: body.length });
  };
  const record = (host: string, checkedAt: string, ok: boolean): HostChecks => ({
    host,
    checkedAt,
    agentVersion: "test",
    ok,
    serverId: null,
    checks: [
      {
        check: "database",
        ok,
        found: ok ? "fine" : "binary logging is off",
        ...(ok ? {} : { fix: "set log_bin" }),
      },
    ],
  });

  it("marks a record hours old stale, and reports one that does not parse as a failing host", async () => {
    put("db-1", JSON.stringify(record("db-1", "2026-12-07T11:40:00Z", true)));
    put("db-2", JSON.stringify(record("db-2", "2026-12-07T08:00:00Z", false)));
    put("db-3", "{ not json");
    const hosts = await readHostChecks(bucket.client, BUCKET, location, now);
    expect(hosts.map(({ host, ok, stale }) => ({ host, ok, stale }))).toEqual([
      { host: "db-1", ok: true, stale: false },
      { host: "db-2", ok: false, stale: true },
      { host: "db-3", ok: false, stale: true },
    ]);
    expect(hosts[1]!.checks[0]).toMatchObject({ fix: "set log_bin" });
    expect(hosts[2]!.checks[0]).toMatchObject({ check: "doctor record", ok: false });
    expect(hosts[2]!.checks[0]!.found).toContain("does not parse");
  });

  it("is empty for a cluster no host has been installed on", async () => {
    expect(await readHostChecks(bucket.client, BUCKET, location, now)).toEqual([]);
  });
});
