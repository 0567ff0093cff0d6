/**
 * Runs the S3 stand-in (fauxqs, file mode) as its own process, so a test can kill it mid-upload
 * and the sandbox can keep it running. Prints one JSON line with the address once it listens.
 */
import { startFauxqs } from "fauxqs";

const [portArg, storageDir, ...buckets] = process.argv.slice(2);
if (!portArg || !storageDir) {
  console.error("usage: s3-process.ts <port> <storage dir> [bucket …]");
  process.exit(2);
}
const server = await startFauxqs({ port: Number(portArg), logger: false, s3StorageDir: storageDir });
for (const bucket of buckets) server.createBucket(bucket);
console.log(JSON.stringify({ address: server.address, port: server.port }));
const shutdown = async () => {
  await server.stop();
  process.exit(0);
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
