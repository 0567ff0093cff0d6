import { readdirSync, readFileSync } from "node:fs";

/** Peak resident memory (VmHWM) of processes, sampled while they run. */
export class RssSampler {
  private readonly peaks = new Map<number, { name: string; kib: number }>();
  private readonly timer: NodeJS.Timeout;

  /** Samples `root` and all its descendants. */
  constructor(private readonly root: number) {
    this.timer = setInterval(() => this.sample(), 100);
  }

  private sample(): void {
    const tree = [this.root, ...descendants(this.root)];
    for (const pid of tree) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const kib = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
        const name = /Name:\s+(\S+)/.exec(status)?.[1] ?? "?";
        const known = this.peaks.get(pid);
        if (!known || known.kib < kib) this.peaks.set(pid, { name, kib });
      } catch {
        // The process ended between listing and reading.
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Peak RSS in MiB of the process named `name` (the largest if several). */
  peakMiB(name: string): number {
    const kib = Math.max(0, ...[...this.peaks.values()].filter((p) => p.name === name).map((p) => p.kib));
    return kib / 1024;
  }
}

function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  const result: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      result.push(child);
      queue.push(child);
    }
  }
  return result;
}
