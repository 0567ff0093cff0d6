import { ErrorNames, RewindError } from "../../core/errors.js";
import type { Engine, PrepareStep } from "../engines/engine.js";
import { runTool } from "../tool.js";

/** Applies the redo log so the staged copy is consistent (`--prepare`); it refuses to report success otherwise. */
export async function prepareBackup(
  engine: Engine,
  stagingDir: string,
  step?: PrepareStep,
  useMemoryMiB = 256,
): Promise<string> {
  const { stderr } = await runTool(
    engine.tools.backup,
    engine.prepareArgs(stagingDir, useMemoryMiB, step),
  ).catch((error: Error) => {
    throw new RewindError(
      ErrorNames.prepare,
      `preparing the backup failed, so it was not installed and the datadir is untouched: ${error.message}`,
    );
  });
  if (!stderr.includes(engine.completedMarker)) {
    throw new RewindError(
      ErrorNames.prepare,
      `${engine.tools.backup} --prepare ended without "${engine.completedMarker}", so the backup was not installed: ${stderr.slice(-1500)}`,
    );
  }
  return stderr;
}
