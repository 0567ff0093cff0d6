import { z } from "zod";
import { s3Client } from "../lib/clients.js";
import { parseInput, RestoreInput } from "../lib/inputs.js";
import { logger } from "../lib/observability.js";
import { planClusterRestore } from "../lib/plan-restore.js";
import { clusterSettings, readSettings } from "../lib/settings.js";

const settings = readSettings();

/** The state machine wraps the operator's input with the execution name, the restore's id. */
const PlanRestoreEvent = z.object({
  input: z.unknown(),
  restoreId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/),
});

export async function handler(event: unknown) {
  const { input: raw, restoreId } = parseInput(PlanRestoreEvent, event, "plan-restore");
  const input = parseInput(RestoreInput, raw, "Restore");
  await clusterSettings(settings, input.cluster);
  const planned = await planClusterRestore(s3Client(), settings.bucket, input, restoreId);
  logger.info("restore planned", { ...planned });
  return planned;
}
