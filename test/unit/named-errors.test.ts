import { describe, expect, it } from "vitest";
import { parseBackupId } from "../../core/backup-id.js";
import { parseBinlogManifest } from "../../core/binlog/manifest.js";
import { BinlogReader } from "../../core/binlog/parse.js";
import { parseBackupManifest } from "../../core/manifest.js";
import { mariadbEngine } from "../../host-agent/engines/mariadb.js";
import { prepareBackup } from "../../host-agent/restore/prepare.js";
import { SqlClient } from "../../host-agent/sql-client.js";

/** Every foreseeable fault reaches Step Functions with a name its Catch and an operator can act on. */
describe("named errors", () => {
  const named = (name: string) => expect.objectContaining({ name });

  it("for bad data and bad input", () => {
    expect(() => parseBackupId("yesterday")).toThrow(named("UsageError"));
    expect(() => parseBackupManifest("{", "s3://b/k")).toThrow(named("VerifyFailed"));
    expect(() => parseBackupManifest("{}", "s3://b/k")).toThrow(named("VerifyFailed"));
    expect(() => parseBinlogManifest("[]", "s3://b/k")).toThrow(named("VerifyFailed"));
    expect(() => new BinlogReader().push(Buffer.from("not a binlog"))).toThrow(named("BinlogInvalid"));
    expect(() => mariadbEngine.parseToolVersion("mystery 1.0")).toThrow(named("ToolVersionMismatch"));
  });

  it("for tools and SQL that fail", async () => {
    const engine = { ...mariadbEngine, tools: { ...mariadbEngine.tools, backup: "false" } };
    await expect(prepareBackup(engine, "/nonexistent")).rejects.toEqual(named("PrepareFailed"));
    await expect(
      new SqlClient({ socket: "/nonexistent.sock" }, { username: "u", password: "p" }).rows("SELECT 1"),
    ).rejects.toEqual(named("SqlFailed"));
  });
});
