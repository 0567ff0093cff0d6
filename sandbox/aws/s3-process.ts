/**
 * Runs the S3 stand-in as its own process, so a test can kill it mid-upload and the sandbox can
 * keep it running: fauxqs (file mode) on a loopback port of its own, behind the S3 gate (IAM,
 * bucket policy, key use, Object Lock, request counts) on the given port. Prints one JSON line
 * with the address once it listens.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { startFauxqs } from "fauxqs";
import { freePort } from "../processes.js";
import { S3Gate, type S3GateRules } from "./s3-gate.js";

const [portArg, storageDir, rulesFile, ...buckets] = process.argv.slice(2);
if (!portArg || !storageDir || rulesFile === undefined) {
  console.error("usage: s3-process.ts <port> <storage dir> <rules file or -> [bucket …]");
  process.exit(2);
}
const server = await startFauxqs({ port: await freePort(), logger: false, s3StorageDir: storageDir });
for (const bucket of buckets) server.createBucket(bucket);
const rules = rulesFile === "-" ? {} : (JSON.parse(readFileSync(rulesFile, "utf8")) as S3GateRules);
const gate = new S3Gate(
  { host: "127.0.0.1", port: server.port },
  rules,
  undefined,
  path.join(storageDir, "gate-versions.jsonl"),
);
await gate.prepare(buckets);
const port = await gate.listen(Number(portArg));
console.log(JSON.stringify({ port }));
const shutdown = async () => {
  gate.close();
  await server.stop();
  process.exit(0);
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
