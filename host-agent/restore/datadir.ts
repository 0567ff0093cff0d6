import { existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import type { KeyringNode } from "@aws-crypto/client-node";
import type { S3Client } from "@aws-sdk/client-s3";
import { ErrorNames, RewindError } from "../../core/errors.js";
import type { BackupManifest } from "../../core/manifest.js";
import type { Engine } from "../engines/engine.js";
import { log } from "../log.js";
import { extractBackup, storedBytesToExtract } from "./extract.js";
import type { XbstreamFilter } from "./partial.js";
import { prepareBackup } from "./prepare.js";

/** Refuses a non-empty target unless the old datadir may be moved aside. Touches nothing. */
export function checkTarget(target: string, moveAside: boolean): void {
  if (existsSync(target) && readdirSync(target).length > 0 && !moveAside) {
    throw new RewindError(
      ErrorNames.targetNotEmpty,
      `${target} is not empty; nothing was touched. Restore into an empty or new directory, or pass --move-aside to keep the old datadir as ${target}.rewind-<timestamp>`,
    );
  }
}

/**
 * A backup into `target`: extracted and prepared in a staging directory beside it, then swapped
 * in. An incremental's chain (full backup first) is extracted link by link, every link downloaded
 * and verified before the first prepare; the full backup is prepared, then each incremental's
 * deltas applied onto it in order. With `moveAside`, a non-empty target is renamed to
 * `<target>.rewind-<timestamp>` first; nothing is ever deleted. `beforeSwap` runs once the staged
 * copy is ready (to stop the server).
 */
export async function installBackup(
  chain: readonly BackupManifest[],
  target: string,
  options: {
    client: S3Client;
    bucket: string;
    keyring: KeyringNode;
    engine: Engine;
    concurrency: number;
    moveAside: boolean;
    onBytes?: (bytes: number) => void;
    beforeSwap?: () => Promise<void>;
    /**
     * Runs on the extracted, verified, not yet prepared copy (a table restore: the table list),
     * with every link's directory, the full backup's first.
     */
    afterExtract?: (dirs: readonly string[]) => Promise<void>;
    /** Called as the prepare starts. */
    beforePrepare?: () => void;
    /** Only the files a filter from this passes are extracted (a partial table restore): one per link. */
    filter?: () => XbstreamFilter;
  },
): Promise<{ movedAside: string | null }> {
  checkTarget(target, options.moveAside);
  if (chain.length === 0 || chain[0]!.type !== "full") {
    throw new RewindError(
      ErrorNames.usage,
      "a restore starts from a full backup; the chain given has none first",
    );
  }
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  const staging = `${target}.rewind-staging-${stamp}`;
  // Each incremental's deltas, until applied (beside the staging directory: the same file system).
  const deltas = chain.slice(1).map((_, index) => `${staging}.incremental-${index + 1}`);
  const dirs = [staging, ...deltas];
  try {
    let before = 0;
    for (const [index, link] of chain.entries()) {
      const { onBytes, filter: makeFilter, ...rest } = options;
      const filter = makeFilter?.();
      await extractBackup(link, {
        ...rest,
        targetDir: dirs[index]!,
        ...(onBytes ? { onBytes: (bytes: number) => onBytes(before + bytes) } : {}),
        ...(filter ? { filter } : {}),
      });
      before += storedBytesToExtract(link, filter?.keep);
    }
    await options.afterExtract?.(dirs);
    log("info", "backup downloaded and verified; preparing", {
      backupId: chain.at(-1)!.backupId,
      chain: chain.map((link) => link.backupId),
      staging,
    });
    options.beforePrepare?.();
    await prepareBackup(options.engine, staging, { moreToApply: deltas.length > 0 });
    for (const [index, incrementalDir] of deltas.entries()) {
      await prepareBackup(options.engine, staging, {
        incrementalDir,
        moreToApply: index < deltas.length - 1,
      });
      rmSync(incrementalDir, { recursive: true, force: true });
    }
    // A restored server must get a fresh identity (DESIGN §3).
    rmSync(path.join(staging, "auto.cnf"), { force: true });
    await options.beforeSwap?.();
    let movedAside: string | null = null;
    if (existsSync(target)) {
      if (readdirSync(target).length > 0) {
        movedAside = `${target}.rewind-${stamp}`;
        renameSync(target, movedAside);
      } else {
        rmSync(target, { recursive: true });
      }
    }
    renameSync(staging, target);
    return { movedAside };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  } finally {
    for (const dir of deltas) rmSync(dir, { recursive: true, force: true });
  }
}
