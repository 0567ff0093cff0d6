import { describe, expect, it } from "vitest";
import { makeBackupId, parseBackupId } from "../../core/backup-id.js";
import { restorePlanKey, restoreReportKey, validateClusterName } from "../../core/layout.js";

describe("the contracts core owns for every part", () => {
  it("puts a restore's report beside its plan", () => {
    expect(restorePlanKey({ cluster: "orders" }, "exec-1")).toBe("orders/restores/exec-1/plan.json");
    expect(restoreReportKey({ cluster: "orders" }, "exec-1")).toBe("orders/restores/exec-1/report.json");
  });

  it("makes backup ids it can read back, whatever the host name", () => {
    const id = makeBackupId(new Date("2026-11-21T03:15:00Z"), "full", `db/1 ${"x".repeat(200)}`);
    expect(id).toMatch(/^20261121T031500Z-full-db-1-x+$/);
    expect(parseBackupId(id).host).toHaveLength(100);
    expect(validateClusterName("Orders")).toMatch(/lower-case letters, digits and hyphens/);
  });
});
