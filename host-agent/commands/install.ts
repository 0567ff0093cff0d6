import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { DoctorCheck } from "../../core/contracts/host-checks.js";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { AgentContext } from "../context.js";
import { recordChecks, runChecks } from "../doctor.js";
import { log } from "../log.js";
import { runTool } from "../tool.js";
import { type EnsureResult, ensureAccounts } from "../users/ensure.js";

export const STREAM_UNIT = "rewind-binlog-stream.service";

export interface InstallOptions {
  /** Where the unit goes; /etc/systemd/system by default. */
  readonly unitDir: string;
  /** Where the agent bundle is copied for the service to run. */
  readonly installDir: string;
  /** The config the service reads. */
  readonly configFile: string;
  /** Write the files only: no daemon-reload, no enable, no restart (images, tests). */
  readonly noStart: boolean;
  /** Leave the database's accounts alone (by default a primary's are made to match the secret). */
  readonly noAccounts: boolean;
}

export interface InstallResult {
  readonly unit: string;
  readonly bundle: string;
  readonly started: boolean;
  /** What `users ensure` did (on a primary; skipped on a replica), unless told not to run it. */
  readonly accounts?: EnsureResult;
  /** The doctor's checks that failed (recorded for `list` at `<cluster>/hosts/<host>/doctor.json`). */
  readonly doctor: { readonly ok: boolean; readonly failed: readonly DoctorCheck[] };
}

/** The systemd unit: restarted on any exit, stopped with SIGTERM so the chunk in flight finishes. */
export function streamUnit(node: string, bundle: string, configFile: string, engineUnit: string): string {
  return [
    "[Unit]",
    "Description=Rewind binlog streamer: ships the active binlog to S3 within seconds",
    "Documentation=https://github.com/rewind/rewind#the-host-agent",
    `After=network-online.target ${engineUnit}.service`,
    "Wants=network-online.target",
    // Never give up restarting: without it, five failures in ten seconds (the database down)
    // leave the streamer dead until the next install run (systemd.unit(5), StartLimitIntervalSec).
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${node} ${bundle} binlog-stream --config ${configFile}`,
    "Restart=always",
    "RestartSec=2",
    "TimeoutStopSec=60",
    "KillMode=mixed",
    // Its work is never urgent against the database's own.
    "Nice=5",
    "IOSchedulingClass=best-effort",
    "IOSchedulingPriority=6",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * `rewind-agent install`: installs binlog-stream as a systemd service (the SSM document runs it
 * on every tagged host; running it again updates the agent and restarts the service). The agent
 * bundle is copied beside nothing else it needs: `node` and the config are the host's.
 */
export async function install(context: AgentContext, options: InstallOptions): Promise<InstallResult> {
  const running = process.argv[1];
  if (!running?.endsWith(".mjs")) {
    throw new RewindError(
      ErrorNames.usage,
      "install copies the agent bundle it runs from; run it as `node rewind-agent.mjs install`",
    );
  }
  mkdirSync(options.installDir, { recursive: true, mode: 0o755 });
  const bundle = path.join(options.installDir, "rewind-agent.mjs");
  const newBundle = readFileSync(running);
  const bundleChanged = !existsSync(bundle) || !readFileSync(bundle).equals(newBundle);
  if (bundleChanged) {
    // Replaced whole, so a running service never reads half a file.
    const temporary = `${bundle}.${process.pid}`;
    writeFileSync(temporary, newBundle, { mode: 0o644 });
    renameSync(temporary, bundle);
  }
  mkdirSync(options.unitDir, { recursive: true });
  const unit = path.join(options.unitDir, STREAM_UNIT);
  const content = streamUnit(
    process.execPath,
    bundle,
    path.resolve(options.configFile),
    context.engine.serviceName,
  );
  const unitChanged = !existsSync(unit) || readFileSync(unit, "utf8") !== content;
  if (unitChanged) writeFileSync(unit, content, { mode: 0o644 });
  log("info", "binlog-stream service written", { unit, bundle, bundleChanged, unitChanged });
  // Tagging a host of a new cluster is enough: its primary gets the accounts here (a no-op once
  // they match), its replicas through replication. Before the streamer starts, which needs them.
  const accounts = options.noAccounts ? undefined : await ensureAccounts(context, { onReplica: "skip" });
  // What this host lacks, recorded where `list` shows it: a host that fails is seen without
  // logging in to it. Not fatal: the service is still installed.
  const checks = await runChecks(context);
  await recordChecks(context, checks);
  const failed = checks.checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    log("warn", `doctor: ${failed.map((c) => `${c.check}: ${c.found}; ${c.fix}`).join(" | ")}`);
  }
  const result = {
    unit,
    bundle,
    ...(accounts ? { accounts } : {}),
    doctor: { ok: checks.ok, failed },
  };
  if (options.noStart) return { ...result, started: false };
  await runTool("systemctl", ["daemon-reload"]);
  await runTool("systemctl", ["enable", STREAM_UNIT]);
  // An update must run the new bundle; an unchanged install (the association, every 30 minutes) leaves a
  // running streamer alone.
  await runTool("systemctl", [bundleChanged || unitChanged ? "restart" : "start", STREAM_UNIT]);
  return { ...result, started: true };
}
