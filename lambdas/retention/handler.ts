import { z } from "zod";
import { s3Client } from "../lib/clients.js";
import { parseInput } from "../lib/inputs.js";
import { logger, metrics } from "../lib/observability.js";
import { applyRetention } from "../lib/retention.js";
import { clusterSettings, readSettings } from "../lib/settings.js";

const settings = readSettings();

const RetentionEvent = z.object({ cluster: z.string() }).loose();

/** Deletes what the PITR-aware policy no longer needs, or nothing and why. */
export async function handler(event: unknown) {
  const { cluster } = parseInput(RetentionEvent, event, "retention");
  await clusterSettings(settings, cluster);
  const report = await applyRetention(s3Client(), settings.bucket, cluster, settings.retention, new Date());
  if (report.refused) logger.warn("retention deleted nothing", { ...report });
  else logger.info("retention applied", { ...report });
  metrics.addDimension("Cluster", cluster);
  metrics.addMetric("RetentionDeletedObjects", "Count", report.deletedObjects);
  metrics.addMetric("RetentionRefused", "Count", report.refused ? 1 : 0);
  metrics.publishStoredMetrics();
  return report;
}
