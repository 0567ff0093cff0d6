import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { AgentConfig } from "./config.js";
import { processAlive } from "./lock.js";
import type { DatabaseCredentials } from "./secrets.js";

function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Removes defaults files left by agents that were killed before their cleanup ran. */
function sweepStale(dir: string): void {
  for (const entry of readdirSync(dir)) {
    const pid = Number(entry.split("-")[0]);
    if (!Number.isInteger(pid) || !processAlive(pid))
      rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Hands credentials to mysql/mariadb tools without argv or environment: a 0600 option file in a
 * 0700 directory under the state dir, passed as `--defaults-extra-file` (always the first
 * argument), removed afterwards, and by the next run if this one is killed.
 */
export async function withDefaultsFile<T>(
  credentials: DatabaseCredentials,
  connection: AgentConfig["connection"],
  stateDir: string,
  use: (file: string) => Promise<T>,
): Promise<T> {
  const parent = path.join(stateDir, "credentials");
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  sweepStale(parent);
  const dir = mkdtempSync(path.join(parent, `${process.pid}-`));
  const file = path.join(dir, "client.cnf");
  writeDefaultsFile(file, credentials, connection);
  try {
    return await use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes (or rewrites in place, after a rotation) a 0600 option file with these credentials. */
export function writeDefaultsFile(
  file: string,
  credentials: DatabaseCredentials,
  connection: AgentConfig["connection"],
): void {
  const lines = [
    "[client]",
    `user=${quote(credentials.username)}`,
    `password=${quote(credentials.password)}`,
  ];
  if (connection.socket) lines.push(`socket=${quote(connection.socket)}`);
  if (connection.host) lines.push(`host=${quote(connection.host)}`);
  if (connection.port) lines.push(`port=${connection.port}`);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
}
