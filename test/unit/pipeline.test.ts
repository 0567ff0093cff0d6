import { describe, expect, it } from "vitest";
import { PipelineSupervisor } from "../../host-agent/pipeline.js";

const later = (ms: number, error?: Error) =>
  new Promise<void>((resolve, reject) => setTimeout(() => (error ? reject(error) : resolve()), ms));

describe("the pipeline supervisor", () => {
  it("stops every stage once, at the first failure, and names it as the cause", async () => {
    const stops: string[] = [];
    const supervisor = new PipelineSupervisor(["tool", "zstd", "upload"], (cause) => stops.push(cause.stage));
    await supervisor.run([
      ["tool", later(30, new Error("tool killed by SIGTERM"))],
      ["zstd", later(20, new Error("zstd killed by SIGTERM"))],
      ["upload", later(5, new Error("S3 refused the part"))],
    ]);
    expect(stops).toEqual(["upload"]);
    expect(supervisor.cause()?.error.message).toBe("S3 refused the part");
    // The consequences follow in the data's path, whatever order they came in.
    expect(supervisor.failures().map((f) => f.stage)).toEqual(["upload", "tool", "zstd"]);
  });

  it("reports nothing when every stage succeeds, and never stops", async () => {
    let stopped = false;
    const supervisor = new PipelineSupervisor(["a", "b"], () => {
      stopped = true;
    });
    await supervisor.run([
      ["a", later(1)],
      ["b", later(2)],
    ]);
    expect(supervisor.cause()).toBeUndefined();
    expect(supervisor.failures()).toEqual([]);
    expect(stopped).toBe(false);
  });

  it("takes failures reported by a stage's listeners as well as its promise", async () => {
    const supervisor = new PipelineSupervisor(["encryption", "upload"], () => {});
    supervisor.fail("encryption", "KMS refused");
    await supervisor.run([["upload", later(1, new Error("stream destroyed"))]]);
    expect(supervisor.failures().map((f) => [f.stage, f.error.message])).toEqual([
      ["encryption", "KMS refused"],
      ["upload", "stream destroyed"],
    ]);
  });
});
