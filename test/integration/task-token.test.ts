import { once } from "node:events";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentStatus, STATUS_NEWEST_BINLOGS } from "../../core/agent-output.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { setUpLocalAgent } from "../../sandbox/hosts/agent.js";
import { MariaDbServer } from "../../sandbox/hosts/mariadb-server.js";
import { agent, BUCKET, scratchDir } from "../support.js";

interface SfnCall {
  readonly target: string;
  readonly body: Record<string, string>;
  /** The region the request was signed for (its SigV4 credential scope). */
  readonly region?: string;
}

/** Records the Step Functions calls the agent makes (the JSON 1.0 protocol), answering each with {}. */
async function fakeStepFunctions(): Promise<{ endpoint: string; calls: SfnCall[]; close: () => void }> {
  const calls: SfnCall[] = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on("end", () => {
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(String(request.headers.authorization ?? ""));
      calls.push({
        target: String(request.headers["x-amz-target"]),
        body: JSON.parse(body),
        ...(scope ? { region: scope[1] } : {}),
      });
      response.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
      response.end("{}");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, calls, close: () => server.close() };
}

describe("the agent reports to Step Functions with --task-token", () => {
  const scratch = scratchDir("task-token");
  let s3: S3Server;
  let source: MariaDbServer;
  let sfn: Awaited<ReturnType<typeof fakeStepFunctions>>;
  let configFile: string;

  beforeAll(async () => {
    sfn = await fakeStepFunctions();
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
    source = await MariaDbServer.start({ baseDir: `${scratch.dir}/source`, serverId: 401 });
    ({ configFile } = await setUpLocalAgent({
      dir: `${scratch.dir}/agent`,
      server: source,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      cluster: "orders",
      host: "db-401",
      extra: { sfnEndpoint: sfn.endpoint, heartbeatSeconds: 1 },
    }));
  });

  afterAll(async () => {
    sfn?.close();
    await source?.destroy();
    await s3?.stop();
    scratch.remove();
  });

  it("sends SendTaskSuccess with the result of a backup, after heartbeats", async () => {
    const run = await agent(["backup", "--type", "full", "--config", configFile, "--task-token", "token-ok"]);
    expect(run.exitCode, run.stderr).toBe(0);
    const success = sfn.calls.find((call) => call.target === "AWSStepFunctions.SendTaskSuccess");
    expect(success?.body.taskToken).toBe("token-ok");
    expect(JSON.parse(success!.body.output!)).toMatchObject({
      backupId: run.output?.result?.backupId,
      type: "full",
    });
    expect(
      sfn.calls.filter((call) => call.target === "AWSStepFunctions.SendTaskHeartbeat").length,
    ).toBeGreaterThan(0);
    expect(sfn.calls.at(-1)!.target).toBe("AWSStepFunctions.SendTaskSuccess");
  });

  it("sends SendTaskFailure with the error name and an actionable cause", async () => {
    sfn.calls.length = 0;
    const run = await agent([
      "verify",
      "--backup-id",
      "20200101T000000Z-full-nowhere",
      "--config",
      configFile,
      "--task-token",
      "token-bad",
    ]);
    expect(run.exitCode).toBe(1);
    expect(sfn.calls).toEqual([
      expect.objectContaining({
        target: "AWSStepFunctions.SendTaskFailure",
        body: expect.objectContaining({ taskToken: "token-bad", error: "BackupNotFound" }),
      }),
    ]);
    expect(sfn.calls[0]!.body.cause).toMatch(
      /has no manifest .* `rewind-agent list` shows the complete backups/,
    );
  });

  it("reports a config that cannot be loaded, with the token from the environment, never from argv", async () => {
    sfn.calls.length = 0;
    // As SSM Agent runs it: AWS_SSM_REGION_NAME names the host's region; AWS_REGION is not set.
    const missing = await agent(["status", "--config", `${scratch.dir}/nowhere.json`], {
      REWIND_TASK_TOKEN: "token-no-config",
      AWS_ENDPOINT_URL_SFN: sfn.endpoint,
      AWS_SSM_REGION_NAME: "eu-west-1",
    });
    expect(missing.exitCode).toBe(1);
    expect(missing.output?.error?.name).toBe("ConfigInvalid");
    expect(sfn.calls).toEqual([
      expect.objectContaining({
        target: "AWSStepFunctions.SendTaskFailure",
        body: expect.objectContaining({ taskToken: "token-no-config", error: "ConfigInvalid" }),
      }),
    ]);
    expect(sfn.calls[0]!.body.cause).toMatch(/nowhere\.json: does not exist; pass --config/);
    expect(sfn.calls[0]!.region).toBe("eu-west-1");

    // Valid JSON that fails validation still yields the endpoint it names.
    sfn.calls.length = 0;
    const invalid = `${scratch.dir}/invalid.json`;
    writeFileSync(
      invalid,
      JSON.stringify({ cluster: "Orders!", sfnEndpoint: sfn.endpoint, region: "us-east-1" }),
    );
    const bad = await agent(["status", "--config", invalid], { REWIND_TASK_TOKEN: "token-bad-config" });
    expect(bad.output?.error?.name).toBe("ConfigInvalid");
    expect(sfn.calls.map((call) => [call.body.taskToken, call.body.error])).toEqual([
      ["token-bad-config", "ConfigInvalid"],
    ]);
  });

  it("status stays within SSM's 24,000 characters of output however many binlogs the host keeps", async () => {
    await source.query("FLUSH BINARY LOGS;\n".repeat(600));
    const run = await agent(["status", "--config", configFile]);
    expect(run.exitCode, run.stderr).toBe(0);
    const line = JSON.stringify(run.output);
    expect(line.length).toBeLessThan(24_000);
    const status = AgentStatus.parse(run.output?.result);
    expect(status.binlogs.count).toBeGreaterThan(600);
    expect(status.binlogs.newest).toHaveLength(STATUS_NEWEST_BINLOGS);
    expect(status.binlogs.first).toBe("mariadb-bin.000001");
  });

  it("a request for another cluster is refused before anything is touched, naming both clusters", async () => {
    sfn.calls.length = 0;
    const datadir = `${scratch.dir}/untouched`;
    mkdirSync(datadir);
    writeFileSync(`${datadir}/keep`, "x");
    const restore = await agent(
      [
        "restore",
        "--backup-id",
        "20200101T000000Z-full-nowhere",
        "--datadir",
        datadir,
        "--move-aside",
        "--expect-cluster",
        "billing",
        "--config",
        configFile,
      ],
      { REWIND_TASK_TOKEN: "token-wrong-cluster" },
    );
    expect(restore.exitCode).toBe(1);
    expect(restore.output?.error).toMatchObject({
      name: "ConfigInvalid",
      message: expect.stringMatching(
        /for cluster billing, but this host's agent config .* is for cluster orders/,
      ),
    });
    expect(readdirSync(datadir)).toEqual(["keep"]);
    expect(readdirSync(scratch.dir).filter((name) => name.startsWith("untouched."))).toEqual([]);
    expect(restore.stderr).not.toMatch(/binlogs fetched|backup downloaded|planning/);
    expect(sfn.calls.map((call) => [call.body.taskToken, call.body.error])).toEqual([
      ["token-wrong-cluster", "ConfigInvalid"],
    ]);
    const backup = await agent([
      "backup",
      "--type",
      "full",
      "--expect-cluster",
      "billing",
      "--config",
      configFile,
    ]);
    expect(backup.output?.error?.name).toBe("ConfigInvalid");
    const same = await agent(["status", "--expect-cluster", "orders", "--config", configFile]);
    expect(same.exitCode, same.stderr).toBe(0);
  });
});
