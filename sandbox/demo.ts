import { existsSync, readFileSync } from "node:fs";
/**
 * `npm run demo`: the deployed control plane on one machine. The CDK app is synthesized; its
 * Backup, Restore and RestoreDrill state machines run under aws-local-stepfunctions with the real
 * Lambda handlers and, for the agent steps, the real Rewind-RunAgent document and agent bundle on
 * a MariaDB primary, replica and standby. With a workload writing throughout: the scheduled full
 * backup (from the replica), binlogs streamed to S3, DROP TABLE, the table brought back, the
 * Restore state machine to the second before it, then the primary lost and the replica promoted,
 * and a restore to a point after the failover, each proven row by row. Exits non-zero if any
 * proof fails.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { Sandbox } from "./sandbox.js";
import { runFailover, runRollBack, runStory } from "./story.js";

const { values } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "150" },
    keep: { type: "boolean", default: false },
    "no-drill": { type: "boolean", default: false },
  },
});
const MiB = 1024 * 1024;
const failures: string[] = [];
const step = (text: string) => console.log(`\n▶ ${text}`);
const info = (text: string) => console.log(`  ${text}`);
const prove = (claim: string, ok: boolean, detail = "") => {
  console.log(`  ${ok ? "✔" : "✘"} ${claim}${detail ? ` (${detail})` : ""}`);
  if (!ok) failures.push(claim);
};

let sandbox: Sandbox | undefined;
try {
  step("Setting up the sandbox");
  sandbox = await Sandbox.up({
    root: path.resolve(".sandbox", "demo"),
    datasetMb: Number(values["size-mb"]),
    log: info,
  });
  for (const host of sandbox.state.hosts)
    info(`${host.instanceId}  ${host.name.padEnd(11)} port ${host.port}  ${host.configFile}`);
  const report = await runStory(sandbox, {
    shippingRounds: 2,
    drill: !values["no-drill"],
    step,
    info,
    prove,
  });
  const failover = await runFailover(sandbox, { step, info, prove });
  const rollBack = await runRollBack(sandbox, { step, info, prove });
  step("Report");
  info(
    `backup     ${(report.rawBytes / MiB).toFixed(0)} MiB → ${(report.storedBytes / MiB).toFixed(0)} MiB stored, ${report.backupSeconds} s (${report.rawMiBPerSecond} MiB/s), from ${report.backupSource}`,
  );
  info(
    `RPO        ${report.rpoSeconds} s (how far the latest restorable point was behind now, as the watchdog last saw it; binlog-stream ships within 5 s)`,
  );
  info(
    `recovery   ${report.tableRestoreSeconds.toFixed(1)} s to bring the dropped table back into the live primary (mode tables), nothing else rolled back`,
  );
  info(
    `           ${report.restoreSeconds.toFixed(1)} s for the whole server onto the standby (mode replace; replay ${report.replaySeconds} s)`,
  );
  info(
    `failover   ${failover.restoreSeconds.toFixed(1)} s to restore to ${failover.pointInTime}, after the failover, through ${failover.windowSources.join(", ")}`,
  );
  info(
    `roll back  ${rollBack.promoteSeconds.toFixed(1)} s to restore the standby to ${rollBack.pointInTime} and promote it (history ${rollBack.history}, from ${rollBack.parent}); ${rollBack.restoreSeconds.toFixed(1)} s to restore the latest point of that history`,
  );
  info(`proofs     ${failures.length === 0 ? "all passed" : `FAILED: ${failures.join("; ")}`}`);
  if (values.keep) {
    info(`the sandbox stays up in ${sandbox.state.root}: \`npm run sandbox -- status\`; stop it with Ctrl-C`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  }
} catch (error) {
  console.error(`\n✘ demo failed: ${(error as Error).message}`);
  failures.push((error as Error).message);
  // What the streamers said last: most failures of the story show there first.
  for (const [instanceId, streamer] of sandbox?.streamers ?? []) {
    const tail = existsSync(streamer.logFile)
      ? readFileSync(streamer.logFile, "utf8").trim().split("\n").slice(-15).join("\n")
      : "(no log)";
    console.error(`\n--- binlog-stream on ${instanceId}, last lines of ${streamer.logFile}:\n${tail}`);
  }
} finally {
  // A failed run keeps its files (logs, datadirs, the S3 stand-in's objects) for a look.
  await sandbox?.down({ remove: failures.length === 0 });
  if (sandbox && failures.length > 0)
    console.error(`\nthe sandbox's files are kept in ${sandbox.state.root}`);
}
process.exitCode = failures.length === 0 ? 0 : 1;
