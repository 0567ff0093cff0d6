/**
 * List prices and the month's bill from request counts, shared by `bench:cost` and
 * `bench:month`. Published us-east-1 list prices, without free tiers.
 */

/** us-east-1 list prices (USD), November 2026. */
export const PRICE = {
  s3PutListPer1k: 0.005, // PUT, COPY, POST, LIST
  s3GetPer1k: 0.0004, // GET, HEAD and the rest
  s3StandardGbMonth: 0.023,
  kmsPer10k: 0.03,
  secretMonth: 0.4,
  secretsPer10k: 0.05,
  schedulerPerMillion: 1.0,
  sfnPer1kTransitions: 0.025,
  lambdaPerMillion: 0.2,
  lambdaArmGbSecond: 0.0000133334,
  cwMetricMonth: 0.3,
  cwAlarmMonth: 0.1,
  cwLogsIngestGb: 0.5,
  kmsKeyMonth: 1.0,
  dashboardMonth: 3.0,
};

/**
 * What a deployment pays once, whatever its fleet: its customer-managed KMS keys, dashboards and
 * the alarms on no cluster's metrics (failed executions, schedule errors, dead letters).
 */
export function deploymentBill(
  template: Template,
  clusterAlarmOf: (alarm: Template["Resources"][string]) => boolean,
) {
  const resources = Object.values(template.Resources);
  const keys = resources.filter((r) => r.Type === "AWS::KMS::Key").length;
  const dashboards = resources.filter((r) => r.Type === "AWS::CloudWatch::Dashboard").length;
  const alarms = resources.filter((r) => r.Type === "AWS::CloudWatch::Alarm" && !clusterAlarmOf(r)).length;
  return {
    keys,
    dashboards,
    alarms,
    usd: keys * PRICE.kmsKeyMonth + dashboards * PRICE.dashboardMonth + alarms * PRICE.cwAlarmMonth,
  };
}

/** Whether an alarm watches one cluster's metrics (its dimensions name a cluster). */
export function isClusterAlarm(alarm: Template["Resources"][string]): boolean {
  return JSON.stringify(alarm.Properties?.Dimensions ?? []).includes('"Cluster"');
}
const S3_FREE = new Set(["DeleteObject", "DeleteObjects", "DeleteObjects (keys)", "AbortMultipartUpload"]);
const S3_CLASS_A = new Set([
  "PutObject",
  "CopyObject",
  "CreateMultipartUpload",
  "UploadPart",
  "CompleteMultipartUpload",
  "ListObjectsV2",
  "ListObjectVersions",
  "ListMultipartUploads",
  "ListParts",
  "PutObjectRetention",
]);

export type Counts = Record<string, number>;
export const scale = (counts: Counts, factor: number): Counts =>
  Object.fromEntries(Object.entries(counts).map(([key, n]) => [key, n * factor]));
export const add = (...all: Counts[]): Counts => {
  const total: Counts = {};
  for (const counts of all) for (const [key, n] of Object.entries(counts)) total[key] = (total[key] ?? 0) + n;
  return total;
};
export const sum = (counts: Counts, test: (key: string) => boolean) =>
  Object.entries(counts)
    .filter(([key]) => test(key))
    .reduce((total, [, n]) => total + n, 0);

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };

/** Custom metrics a cluster publishes, with how many hours a month each one is sent. */
export function clusterMetricHours(roundsPerDay: number): [string, number][] {
  return [
    ["RestorableLagSeconds", Math.min(720, roundsPerDay * 30)],
    // Published only while a closed file is held as chunks (normally never), and on a conflict.
    ["ChunkOnlyBinlogSeconds", 0],
    ["TwoPrimaries", 0],
    ["BackupSucceeded", 30],
    ["BackupBytes", 30],
    ["RetentionDeletedObjects", 30],
    ["RetentionRefused", 30],
    ["DrillSucceeded", 30 / 7],
    ["RestoreSucceeded", 30],
  ];
}

/**
 * A cluster's month, line by line (what, volume, USD), from its requests by API and the template
 * (its secrets and the alarms on the cluster's metrics).
 */
export function monthBill(
  monthly: Counts,
  template: Template,
  cluster: string,
  options: { readonly metricHours: [string, number][]; readonly logsGb: number },
): { lines: [string, string, number][]; total: number; deploymentAlarms: number } {
  const resources = Object.values(template.Resources);
  const secrets = resources.filter((r) => r.Type === "AWS::SecretsManager::Secret").length;
  const alarms = resources.filter((r) => r.Type === "AWS::CloudWatch::Alarm");
  // Alarms on a cluster's metrics come with each cluster; the others (failed executions, schedule
  // errors, dead letters) once per deployment.
  const clusterAlarms = alarms.filter((r) =>
    JSON.stringify(r.Properties?.Dimensions ?? []).includes(`"${cluster}"`),
  ).length;
  const metricMonths = options.metricHours.reduce((total, [, hours]) => total + hours / 720, 0);
  const memoryGb =
    Number(resources.find((r) => r.Type === "AWS::Lambda::Function")?.Properties?.MemorySize ?? 128) / 1024;
  const lambdaSeconds = sum(monthly, (key) => key.startsWith("Lambda ms")) / 1000;
  const s3ClassA = sum(monthly, (key) => key.startsWith("S3 ") && S3_CLASS_A.has(key.slice(3)));
  const s3Free = sum(monthly, (key) => key.startsWith("S3 ") && S3_FREE.has(key.slice(3)));
  const s3Other = sum(monthly, (key) => key.startsWith("S3 ")) - s3ClassA - s3Free;
  const lines: [string, string, number][] = [
    [
      "S3 PUT/POST/LIST",
      `${Math.round(s3ClassA).toLocaleString()} requests`,
      (s3ClassA / 1000) * PRICE.s3PutListPer1k,
    ],
    ["S3 GET/HEAD", `${Math.round(s3Other).toLocaleString()} requests`, (s3Other / 1000) * PRICE.s3GetPer1k],
    [
      "KMS",
      `${Math.round(sum(monthly, (k) => k.startsWith("KMS "))).toLocaleString()} requests`,
      (sum(monthly, (k) => k.startsWith("KMS ") && !k.includes("via s3")) / 10_000) * PRICE.kmsPer10k,
    ],
    [
      "Secrets Manager API",
      `${Math.round(sum(monthly, (k) => k.startsWith("SecretsManager "))).toLocaleString()} requests`,
      (sum(monthly, (k) => k.startsWith("SecretsManager ")) / 10_000) * PRICE.secretsPer10k,
    ],
    ["Secrets Manager secrets", `${secrets} secrets`, secrets * PRICE.secretMonth],
    [
      "Scheduler",
      `${Math.round(sum(monthly, (k) => k.startsWith("Scheduler "))).toLocaleString()} invocations`,
      (sum(monthly, (k) => k.startsWith("Scheduler ")) / 1e6) * PRICE.schedulerPerMillion,
    ],
    [
      "Step Functions",
      `${Math.round(sum(monthly, (k) => k === "StepFunctions StateTransition")).toLocaleString()} transitions`,
      (sum(monthly, (k) => k === "StepFunctions StateTransition") / 1000) * PRICE.sfnPer1kTransitions,
    ],
    [
      "Lambda",
      `${Math.round(sum(monthly, (k) => k.startsWith("Lambda Invoke"))).toLocaleString()} invocations, ${Math.round(lambdaSeconds)} s at ${memoryGb * 1024} MB`,
      (sum(monthly, (k) => k.startsWith("Lambda Invoke")) / 1e6) * PRICE.lambdaPerMillion +
        lambdaSeconds * memoryGb * PRICE.lambdaArmGbSecond,
    ],
    [
      "CloudWatch metrics",
      `${options.metricHours.length} custom metrics, ${metricMonths.toFixed(2)} metric-months`,
      metricMonths * PRICE.cwMetricMonth,
    ],
    ["CloudWatch alarms", `${clusterAlarms} alarms`, clusterAlarms * PRICE.cwAlarmMonth],
    [
      "CloudWatch Logs",
      `${(options.logsGb * 1000).toFixed(1)} MB of agent output`,
      options.logsGb * PRICE.cwLogsIngestGb,
    ],
  ];
  const total = lines.reduce((sumUsd, [, , usd]) => sumUsd + usd, 0);
  return { lines, total, deploymentAlarms: alarms.length - clusterAlarms };
}

export function printBill(lines: readonly [string, string, number][]): void {
  for (const [what, volume, usd] of lines)
    console.log(`  ${what.padEnd(26)}${volume.padEnd(44)}$${usd.toFixed(2).padStart(6)}`);
}

/** Requests by API, a column per phase. */
export function printPhases(phases: Record<string, Counts>, digits: Record<string, number> = {}): void {
  const names = Object.keys(phases);
  const apis = [...new Set(Object.values(phases).flatMap((counts) => Object.keys(counts)))].sort();
  console.log(`  ${"API".padEnd(42)}${names.map((h) => h.padStart(11)).join("")}`);
  for (const api of apis.filter((api) => !api.startsWith("Lambda ms"))) {
    const cells = names.map((name) => (phases[name]![api] ?? 0).toFixed(digits[name] ?? 0).padStart(11));
    console.log(`  ${api.padEnd(42)}${cells.join("")}`);
  }
}
