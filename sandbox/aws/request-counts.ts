/**
 * Every request the sandbox's stand-ins answered, by service and API (`S3 PutObject`,
 * `KMS GenerateDataKey`, …): what `npm run bench:cost` prices.
 */
export class RequestCounts {
  private readonly counts = new Map<string, number>();

  add(service: string, api: string, n = 1): void {
    const key = `${service} ${api}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  /** Adds counts another process kept (the S3 stand-in's). */
  merge(other: Readonly<Record<string, number>>): void {
    for (const [key, n] of Object.entries(other)) this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get(service: string, api?: string): number {
    let total = 0;
    for (const [key, n] of this.counts) {
      if (api ? key === `${service} ${api}` : key.startsWith(`${service} `)) total += n;
    }
    return total;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }

  reset(): void {
    this.counts.clear();
  }
}
