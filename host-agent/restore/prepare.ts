import type { Engine } from "../engines/engine.js";
import { runTool } from "../tool.js";

/** Applies the redo log so the staged copy is consistent (`--prepare`); it refuses to report success otherwise. */
export async function prepareBackup(engine: Engine, stagingDir: string, useMemoryMiB = 256): Promise<string> {
  const { stderr } = await runTool(engine.tools.backup, engine.prepareArgs(stagingDir, useMemoryMiB));
  if (!stderr.includes(engine.completedMarker)) {
    throw new Error(
      `${engine.tools.backup} --prepare ended without "${engine.completedMarker}": ${stderr.slice(-1500)}`,
    );
  }
  return stderr;
}
