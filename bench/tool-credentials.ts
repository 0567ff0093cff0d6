import { writeFileSync } from "node:fs";
import { accountOf, type LocalAgentSetup } from "../sandbox/hosts/agent.js";
import type { MariaDbServer } from "../sandbox/hosts/mariadb-server.js";

/** The backup user's 0600 option file, as the agent writes it, for the baseline shell pipelines. */
export function toolCredentialsFile(setup: LocalAgentSetup, server: MariaDbServer, file: string): string {
  const { username, password } = accountOf(setup, "backup");
  writeFileSync(file, `[client]\nuser=${username}\npassword="${password}"\nsocket=${server.socket}\n`, {
    mode: 0o600,
  });
  return file;
}
