import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { AgentConfig } from "./config.js";
import type { DatabaseCredentials } from "./secrets.js";

function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/**
 * Hands credentials to mysql/mariadb tools without argv or environment: a 0600 option file in a
 * 0700 directory, passed as `--defaults-extra-file` (always the first argument), removed after.
 */
export async function withDefaultsFile<T>(
  credentials: DatabaseCredentials,
  connection: AgentConfig["connection"],
  use: (file: string) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "rewind-cred-"));
  const file = path.join(dir, "client.cnf");
  const lines = [
    "[client]",
    `user=${quote(credentials.username)}`,
    `password=${quote(credentials.password)}`,
  ];
  if (connection.socket) lines.push(`socket=${quote(connection.socket)}`);
  if (connection.host) lines.push(`host=${quote(connection.host)}`);
  if (connection.port) lines.push(`port=${connection.port}`);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  try {
    return await use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
