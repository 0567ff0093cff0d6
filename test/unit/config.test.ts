import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, parseConfig } from "../../host-agent/config.js";
import { scratchDir } from "../support.js";

const valid = {
  cluster: "orders",
  engine: "mariadb",
  bucket: "rewind-backups",
  connection: { socket: "/run/mysqld/mysqld.sock" },
  secrets: { backup: "rewind/orders/backup" },
  encryption: { kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/abc" },
};

describe("agent config", () => {
  const scratch = scratchDir("config");
  afterAll(() => scratch.remove());

  it("fills defaults an operator would expect", () => {
    const config = parseConfig(valid, "test");
    expect(config.backup).toEqual({
      parallel: 4,
      compressionLevel: 3,
      compressionThreads: 0,
      partSizeMiB: 8,
      segmentSizeMiB: 4096,
      uploadConcurrency: 4,
      blockSizeMiB: 16,
      incremental: { maxChain: 6, whenNoBase: "full" },
    });
    expect(config.stateDir).toBe("/var/lib/rewind");
    expect(config.myCnfPaths).toEqual(["/etc/mysql/my.cnf"]);
  });

  it.each([
    [
      { ...valid, cluster: "Orders DB" },
      /cluster: cluster name "Orders DB" must be lower-case letters, digits and hyphens/,
    ],
    [{ ...valid, engine: "postgres" }, /engine: Invalid option: expected one of "mariadb"\|"mysql"/],
    [{ ...valid, connection: {} }, /connection: set `socket` or `host` \(and `port`\)/],
    [{ ...valid, bucket: "My_Bucket" }, /bucket: .*an S3 bucket name/],
    [
      { ...valid, backup: { partSizeMiB: 5, segmentSizeMiB: 60_000 } },
      /backup: a segment would need more than 10,000 parts: raise backup.partSizeMiB/,
    ],
    [{ ...valid, backup: { partSizeMiB: 4 } }, /backup.partSizeMiB: Too small/],
    [{ ...valid, encryption: { keyFile: "/k", kmsKeyId: "x" } }, /encryption:/],
    [{ ...valid, colour: "blue" }, /Unrecognized key: "colour"/],
    [{ ...valid, prefix: "rewind" }, /prefix: prefix is not supported: .*remove it/],
  ])("names the field and the fix for a bad config (%#)", (raw, message) => {
    expect(() => parseConfig(raw, "/etc/rewind/agent.json")).toThrow(message);
  });

  it("lets flags override single fields, and checks them the same way", () => {
    const file = `${scratch.dir}/agent.json`;
    writeFileSync(file, JSON.stringify(valid));
    const config = loadConfig(file, {
      bucket: "other-bucket",
      "segment-size-mib": "64",
      socket: "/tmp/x.sock",
    });
    expect(config.bucket).toBe("other-bucket");
    expect(config.backup.segmentSizeMiB).toBe(64);
    expect(config.connection.socket).toBe("/tmp/x.sock");
    expect(() => loadConfig(file, { "part-size-mib": "lots" })).toThrow(
      /--part-size-mib must be a number, got "lots"/,
    );
    expect(() => loadConfig(file, { "part-size-mib": "2" })).toThrow(/backup.partSizeMiB: Too small/);
  });

  it("says where the config file should be when it is missing or not JSON", () => {
    expect(() => loadConfig(`${scratch.dir}/missing.json`, {})).toThrow(
      /missing.json: does not exist; pass --config/,
    );
    writeFileSync(`${scratch.dir}/broken.json`, "{ cluster: ");
    expect(() => loadConfig(`${scratch.dir}/broken.json`, {})).toThrow(/broken.json: .*JSON/);
  });
});
