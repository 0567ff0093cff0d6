import { describe, expect, it } from "vitest";
import { BackupType, DOCUMENT_PATTERNS, S3_BUCKET_NAME } from "../../core/contracts/agent-document.js";
import { validateClusterName } from "../../core/layout.js";
import { parseConfig } from "../../host-agent/config.js";

/**
 * The SSM documents' allowed patterns and the agent's own checks come from the same rules: a value
 * is accepted by both or by neither (core/contracts/agent-document.ts).
 */
describe("the agent documents' parameters and the agent agree", () => {
  const matches = (pattern: string, value: string) => new RegExp(pattern).test(value);
  const config = (bucket: string) => ({
    cluster: "orders",
    engine: "mariadb",
    bucket,
    host: "db1",
    connection: { socket: "/run/mysqld/mysqld.sock" },
    secrets: { backup: "rewind/orders/backup" },
    encryption: { keyFile: "/etc/rewind/key" },
  });

  it.each([
    "rewind-backups-123",
    "a.b-c",
    "ab",
    "Rewind",
    "-rewind",
    "rewind-",
    "x".repeat(64),
    "x".repeat(63),
  ])("bucket %s: the plan URI pattern and the agent's config check agree", (bucket) => {
    const agent = (() => {
      try {
        parseConfig(config(bucket), "test");
        return true;
      } catch {
        return false;
      }
    })();
    expect(S3_BUCKET_NAME.test(bucket)).toBe(agent);
    expect(matches(DOCUMENT_PATTERNS.Plan, `s3://${bucket}/orders/restores/exec-1/plan.json`)).toBe(agent);
  });

  it.each(["full", "incremental", "diff", "FULL", ""])(
    "backup type %j: the Type pattern and the agent agree",
    (type) => {
      // Empty: the parameter's default, for commands that take no type.
      expect(matches(DOCUMENT_PATTERNS.Type, type)).toBe(type === "" || BackupType.safeParse(type).success);
    },
  );

  it.each(["orders", "orders-eu-1", "Orders", "-orders", "o", "x".repeat(49), "x".repeat(50), ""])(
    "cluster %j: the Cluster pattern and the agent's name rule agree",
    (cluster) => {
      expect(matches(DOCUMENT_PATTERNS.Cluster, cluster)).toBe(
        cluster === "" || validateClusterName(cluster) === undefined,
      );
    },
  );
});
