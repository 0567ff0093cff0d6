import { snsClient } from "../lib/clients.js";
import { parseInput } from "../lib/inputs.js";
import { clusterOf, Outcome, publishOutcome } from "../lib/notify.js";
import { logger, metrics } from "../lib/observability.js";
import { readSettings } from "../lib/settings.js";

const settings = readSettings();

/**
 * The end of every state machine: a metric the alarms watch (BackupSucceeded, DrillFailed, …)
 * and, on failure or a finished restore, a message to the operators' topic.
 */
export async function handler(event: unknown) {
  const outcome = parseInput(Outcome, event, "notify");
  const name = `${outcome.stateMachine === "RestoreDrill" ? "Drill" : outcome.stateMachine}${outcome.succeeded ? "Succeeded" : "Failed"}`;
  metrics.addDimension("Cluster", clusterOf(outcome));
  metrics.addMetric(name, "Count", 1);
  const storedBytes = outcome.detail?.storedBytes;
  if (outcome.succeeded && typeof storedBytes === "number")
    metrics.addMetric("BackupBytes", "Bytes", storedBytes);
  metrics.publishStoredMetrics();
  const tell = !outcome.succeeded || outcome.stateMachine !== "Backup";
  if (tell && settings.topicArn) await publishOutcome(snsClient(), settings.topicArn, outcome);
  logger.info("outcome recorded", { metric: name, notified: tell && Boolean(settings.topicArn), ...outcome });
  return { metric: name, notified: tell && Boolean(settings.topicArn) };
}
