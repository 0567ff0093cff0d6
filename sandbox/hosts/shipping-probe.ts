import type { S3Client } from "@aws-sdk/client-s3";
import { binlogSequence } from "../../core/binlog/manifest.js";
import { binlogsPrefix, type ClusterLocation } from "../../core/layout.js";
import { listChunks, readChunkHeader } from "../../core/store/binlog-chunks.js";
import { readBinlogManifest } from "../../core/store/catalog.js";
import { listKeys } from "../../core/store/objects.js";
import type { MariaDbServer } from "./mariadb-server.js";
import { WriteWorkload } from "./workload.js";

/** The p-th percentile (0–100) of `values`; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** The newest GTID S3 holds of a source (its newest contiguous chunk or file manifest), or null. */
export async function newestShippedGtid(
  client: S3Client,
  bucket: string,
  location: ClusterLocation,
  source: string,
): Promise<string | null> {
  let newest: { sequence: number; gtid: string | null } | undefined;
  const chunked = (await listChunks(client, bucket, location, source)).at(-1);
  if (chunked) {
    const last = chunked.chain.at(-1);
    if (last) {
      const header = await readChunkHeader(client, bucket, last);
      newest = { sequence: binlogSequence(chunked.file), gtid: header.lastGtid };
    }
  }
  const prefix = binlogsPrefix(location, source);
  const files = (await listKeys(client, bucket, prefix)).keys
    .map((key) => key.slice(prefix.length))
    .filter((name) => name.endsWith(".json") && !name.includes("/"))
    .map((name) => name.slice(0, -".json".length))
    .sort((a, b) => binlogSequence(a) - binlogSequence(b));
  const file = files.at(-1);
  if (file && (!newest || binlogSequence(file) >= newest.sequence)) {
    const manifest = await readBinlogManifest(client, bucket, location, source, file);
    if (manifest?.lastGtid) newest = { sequence: binlogSequence(file), gtid: manifest.lastGtid };
  }
  return newest?.gtid ?? null;
}

/**
 * Measures shipping lag as an operator would see it: at each sample, how far the commit time of
 * the newest transaction in S3 trails that of the newest committed one. A WriteWorkload's rows
 * carry their commit time (written_at) and row i is GTID `gtidSeqBase + i`, so the newest shipped
 * GTID says which row, and so which time, S3 has reached. S3 is read as a restore would: the
 * newest contiguous chunk of the source's newest chunked file, or its newest file manifest.
 */
export class ShippingProbe {
  readonly lags: number[] = [];

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly location: ClusterLocation,
    private readonly source: string,
    private readonly server: MariaDbServer,
    private readonly workload: WriteWorkload,
    /** The workload's first row: before anything of it is shipped, the lag counts from it. */
    private readonly firstId: number,
  ) {}

  /** One sample: the lag in seconds, also kept in `lags`. */
  async sample(): Promise<number> {
    const [, newestAt] = (
      await this.server.query(
        `SELECT id, UNIX_TIMESTAMP(written_at) FROM ${WriteWorkload.table} ORDER BY id DESC LIMIT 1`,
      )
    )[0]!.map(Number) as [number, number];
    const shipped = await newestShippedGtid(this.client, this.bucket, this.location, this.source);
    const [, serverId, seq] = shipped ? shipped.split("-").map(Number) : [0, 0, 0];
    const shippedId = serverId === this.server.serverId ? seq! - this.workload.gtidSeqBase : 0;
    const shippedAt = await this.commitTime(Math.max(shippedId, this.firstId));
    const lag = Math.max(0, newestAt - shippedAt);
    this.lags.push(lag);
    return lag;
  }

  private async commitTime(id: number): Promise<number> {
    return Number(
      (await this.server.scalar(
        `SELECT UNIX_TIMESTAMP(written_at) FROM ${WriteWorkload.table} WHERE id = ${id}`,
      )) ?? 0,
    );
  }

  summary(): { samples: number; p50: number; p99: number; max: number } {
    return {
      samples: this.lags.length,
      p50: percentile(this.lags, 50),
      p99: percentile(this.lags, 99),
      max: Math.max(0, ...this.lags),
    };
  }
}
