import type { S3Client } from "@aws-sdk/client-s3";
import { HOST_CHECKS_STALE_MS, type HostChecks, HostChecksSchema } from "../contracts/host-checks.js";
import { type ClusterLocation, hostChecksPrefix } from "../layout.js";
import { listKeys, readText } from "./objects.js";

/** A host's latest doctor record, with whether it is stale (the association stopped running there). */
export interface HostChecksEntry extends HostChecks {
  readonly stale: boolean;
}

/**
 * Every host's latest doctor record under the cluster (one object per host). A record that does
 * not parse is reported as a failed host, not skipped: a host nobody can see is what this is for.
 */
export async function readHostChecks(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  now = Date.now(),
): Promise<HostChecksEntry[]> {
  const prefix = hostChecksPrefix(location);
  const { keys } = await listKeys(client, bucket, prefix);
  const entries: HostChecksEntry[] = [];
  for (const key of keys.filter((k) => k.endsWith("/doctor.json")).sort()) {
    const host = key.slice(prefix.length, -"/doctor.json".length);
    const text = await readText(client, bucket, key);
    let record: HostChecks;
    try {
      record = HostChecksSchema.parse(JSON.parse(text));
    } catch (error) {
      record = {
        host,
        checkedAt: "",
        agentVersion: "",
        ok: false,
        serverId: null,
        checks: [
          {
            check: "doctor record",
            ok: false,
            found: `s3://${bucket}/${key} does not parse: ${(error as Error).message.split("\n")[0]}`,
            fix: "run `rewind-agent install` on the host (the association does every 30 minutes), which rewrites it",
          },
        ],
      };
    }
    const age = now - Date.parse(record.checkedAt);
    entries.push({ ...record, stale: !(age <= HOST_CHECKS_STALE_MS) });
  }
  return entries;
}
