import { s3Client } from "../lib/clients.js";
import { parseInput, VerifyInput } from "../lib/inputs.js";
import { logger } from "../lib/observability.js";
import { readSettings } from "../lib/settings.js";
import { verifyBackup } from "../lib/verify-backup.js";

const settings = readSettings();

/** Checks a backup (and a restore plan's binlogs) against S3 without downloading it. */
export async function handler(event: unknown) {
  const input = parseInput(VerifyInput, event, "verify");
  const report = await verifyBackup(s3Client(), settings.bucket, input);
  logger.info("backup verified", { ...report });
  return report;
}
