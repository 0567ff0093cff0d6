/**
 * `npm run sandbox -- <command>`: keep a sandbox running to try Rewind by hand.
 *
 *   up [--size-mb N]            start it (stays in the foreground; Ctrl-C or `down` stops it)
 *   status                      each host's agent status, and the backups and restorable window
 *   start <state machine> JSON  run Rewind-Backup, Rewind-Restore or Rewind-RestoreDrill
 *   schedule <name>             fire a schedule once (rewind-full-orders, rewind-binlogs-orders, rewind-expire-orders, …)
 *   down                        stop everything and remove it
 */
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { runAgent } from "./hosts/agent.js";
import { run } from "./processes.js";
import { CLUSTER, Sandbox } from "./sandbox.js";

/** `.sandbox/sandbox` under the working directory; REWIND_SANDBOX_ROOT moves it (a test's own). */
const ROOT = path.resolve(process.env.REWIND_SANDBOX_ROOT ?? path.join(".sandbox", "sandbox"));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { "size-mb": { type: "string", default: "50" } },
});
const [command, ...args] = positionals;
const say = (line: string) => console.log(line);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function up(): Promise<void> {
  if (existsSync(path.join(ROOT, "sandbox.json")) && alive(Sandbox.readState(ROOT).pid)) {
    throw new Error(
      `a sandbox is already up (pid ${Sandbox.readState(ROOT).pid}); \`npm run sandbox -- down\` first`,
    );
  }
  const sandbox = await Sandbox.up({
    root: ROOT,
    datasetMb: Number(values["size-mb"]),
    log: (line) => say(`  ${line}`),
  });
  const { state } = sandbox;
  const replica = sandbox.host("replica");
  const standby = sandbox.host("standby");
  say(`
Rewind sandbox is up (${state.root})

  S3 (fauxqs)   ${state.s3Endpoint}  bucket ${state.bucket}
  KMS           ${state.kmsEndpoint}
  Secrets Mgr   ${state.secretsManagerEndpoint}
  IAM           every request authorised against the synthesized template; denials are printed here
  hosts (tagged rewind:cluster=${CLUSTER}):`);
  for (const host of state.hosts) {
    say(
      `    ${host.instanceId}  ${host.name.padEnd(11)} ${host.role.padEnd(8)} port ${host.port}  socket ${host.socket}`,
    );
    say(`      agent config: ${host.configFile}`);
  }
  say(`
  connect:      mariadb --defaults-file=${sandbox.host("primary").defaultsFile} -uroot
  an agent:     AWS_ACCESS_KEY_ID=${replica.environment?.AWS_ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY=${replica.environment?.AWS_SECRET_ACCESS_KEY} \\
                node ${state.agentBundle} list --config ${replica.configFile}
                (the hosts' instance role credentials)

  back up:      npm run sandbox -- schedule rewind-full-${CLUSTER}
  ship binlogs: npm run sandbox -- schedule rewind-binlogs-${CLUSTER}
  restore:      npm run sandbox -- start Rewind-Restore '{"cluster":"${CLUSTER}","targetInstanceId":"${standby.instanceId}","pointInTime":"<ISO time>","datadir":"${standby.datadir}"}'
                (or "gtid": "0-1-N", "backupId": "…", "latest": true; "dryRun": true for the plan only)
  drill:        npm run sandbox -- schedule rewind-drill-${CLUSTER}
  stop:         Ctrl-C here, or npm run sandbox -- down
`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  say("stopping the sandbox");
  await sandbox.down();
}

async function status(): Promise<void> {
  const state = Sandbox.readState(ROOT);
  say(`sandbox in ${state.root}: ${alive(state.pid) ? `up (pid ${state.pid})` : "its `up` process is gone"}`);
  for (const host of state.hosts) {
    // As the host runs it: with its instance role's credentials, which the sandbox's IAM checks.
    const run = await runAgent(state.agentBundle, ["status", "--config", host.configFile], host.environment);
    const result = run.output?.result as
      | {
          role: string;
          readOnly: boolean;
          gtidExecuted: string;
          replication: { lagSeconds: number | null } | null;
        }
      | undefined;
    say(
      `  ${host.instanceId} ${host.name.padEnd(11)} ${
        result
          ? `${result.role}${result.readOnly ? " (read-only)" : ""}, GTID ${result.gtidExecuted}${result.replication ? `, lag ${result.replication.lagSeconds} s` : ""}`
          : `not answering: ${run.output?.error?.message ?? run.stderr.trim().split("\n").at(-1)}`
      }`,
    );
  }
  const lister = state.hosts[1]!;
  const listing = await runAgent(
    state.agentBundle,
    ["list", "--config", lister.configFile],
    lister.environment,
  );
  process.stdout.write(listing.stderr);
}

async function startExecution(): Promise<number> {
  const [name, json] = args;
  if (!name || !json)
    throw new Error(
      "usage: npm run sandbox -- start <Rewind-Backup|Rewind-Restore|Rewind-RestoreDrill> '<json input>'",
    );
  const sandbox = await Sandbox.attach(ROOT, say);
  try {
    const result = await sandbox.controlPlane.startExecution(name, JSON.parse(json));
    say(
      JSON.stringify(
        result.status === "SUCCEEDED" ? result.output : { error: result.error, cause: result.cause },
        null,
        2,
      ),
    );
    say(`${name} ${result.executionName}: ${result.status}`);
    return result.status === "SUCCEEDED" ? 0 : 1;
  } finally {
    sandbox.controlPlane.stop();
  }
}

async function schedule(): Promise<number> {
  const [name] = args;
  if (!name)
    throw new Error(
      `usage: npm run sandbox -- schedule rewind-full-${CLUSTER}|rewind-binlogs-${CLUSTER}|rewind-drill-${CLUSTER}|rewind-expire-${CLUSTER}`,
    );
  const sandbox = await Sandbox.attach(ROOT, say);
  try {
    const result = await sandbox.controlPlane.fireSchedule(name);
    if ("status" in result) {
      say(
        JSON.stringify(
          result.status === "SUCCEEDED" ? result.output : { error: result.error, cause: result.cause },
          null,
          2,
        ),
      );
      say(`${result.name} ${result.executionName}: ${result.status}`);
      return result.status === "SUCCEEDED" ? 0 : 1;
    }
    if ("function" in result) {
      say(JSON.stringify(result.ok ? result.result : { error: result.error }, null, 2));
      say(`${name} (${result.function}): ${result.ok ? "SUCCEEDED" : "FAILED"}`);
      return result.ok ? 0 : 1;
    }
    for (const host of result.hosts)
      say(
        `${host.instanceId}: ${host.status} ${JSON.stringify(host.result?.result ?? host.result?.error ?? null)}`,
      );
    return result.hosts.every((host) => host.status === "Success") ? 0 : 1;
  } finally {
    sandbox.controlPlane.stop();
  }
}

async function down(): Promise<void> {
  if (!existsSync(path.join(ROOT, "sandbox.json"))) {
    say("no sandbox is up");
    return;
  }
  const state = Sandbox.readState(ROOT);
  if (alive(state.pid)) {
    process.kill(state.pid, "SIGTERM");
    for (let i = 0; i < 600 && alive(state.pid); i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Servers the agent restarted live outside the `up` process; stop whatever still answers.
  for (const host of state.hosts) {
    await run("mariadb-admin", [`--defaults-file=${host.defaultsFile}`, "-uroot", "shutdown"]).catch(
      () => {},
    );
  }
  rmSync(ROOT, { recursive: true, force: true });
  say("the sandbox is down");
}

try {
  switch (command) {
    case "up":
      await up();
      break;
    case "status":
      await status();
      break;
    case "start":
      process.exitCode = await startExecution();
      break;
    case "schedule":
      process.exitCode = await schedule();
      break;
    case "down":
      await down();
      break;
    default:
      say(
        "usage: npm run sandbox -- up [--size-mb N] | status | start <state machine> '<json>' | schedule <name> | down",
      );
      process.exitCode = 2;
  }
} catch (error) {
  console.error(`✘ ${(error as Error).message}`);
  process.exitCode = 1;
}
