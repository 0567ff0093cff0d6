import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { GetCommandInvocationCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, describe, expect, it } from "vitest";
import { SSM_MAX_ATTEMPTS } from "../../lambdas/lib/clients.js";
import { runOnHosts } from "../../lambdas/lib/host-status.js";
import { downloadContent, LocalSsm } from "../../sandbox/aws/ssm.js";
import { agentDocuments } from "../../sandbox/control-plane.js";
import type { Template } from "../../sandbox/state-machine-definitions.js";
import { scratchDir } from "../support.js";
import { synthTemplate } from "./synth.js";

/**
 * The Rewind-RunAgent shell step as synthesized, run by the sandbox's SSM stand-in with an
 * agent that only prints the arguments it was given.
 */
describe("the Rewind-RunAgent shell step", () => {
  const scratch = scratchDir("document");
  const echoAgent = path.join(scratch.dir, "echo-agent.mjs");
  writeFileSync(
    echoAgent,
    "const token = process.env.REWIND_TASK_TOKEN;\nconsole.log(JSON.stringify(token ? [...process.argv.slice(2), { token }] : process.argv.slice(2)));\n",
  );
  const documents = agentDocuments(synthTemplate().toJSON() as Template);
  const document = documents.find((each) => each.name === "Rewind-RunAgent")!;
  const host = {
    instanceId: "i-0000000000000001a",
    name: "db1",
    tags: { "rewind:cluster": "orders" },
    configFile: path.join(scratch.dir, "agent.json"),
    dir: path.join(scratch.dir, "db1"),
  };
  const ssm = new LocalSsm(documents, [host], echoAgent);
  afterAll(() => {
    ssm.close();
    scratch.remove();
  });

  async function argumentsFor(parameters: Record<string, string>): Promise<string[]> {
    const { invocations } = ssm.sendCommand({
      DocumentName: "Rewind-RunAgent",
      InstanceIds: [host.instanceId],
      Parameters: Object.fromEntries(Object.entries(parameters).map(([key, value]) => [key, [value]])),
    });
    await invocations[0]!.done;
    expect(invocations[0]!.status, invocations[0]!.stderr).toBe("Success");
    return JSON.parse(invocations[0]!.stdout.trim());
  }

  it("hands each parameter to the agent as one --flag=value, and a task token (even one starting with '-') in its environment", async () => {
    expect(
      await argumentsFor({
        Command: "restore",
        Plan: "s3://rewind-backups/orders/restores/exec-1/plan.json",
        Cluster: "orders",
        TaskToken: "-AQCEAAAAKgAAAAMAAAAAAAAAAZ+x/y=",
      }),
    ).toEqual([
      "restore",
      "--config",
      host.configFile,
      "--plan=s3://rewind-backups/orders/restores/exec-1/plan.json",
      "--expect-cluster=orders",
      // The token travels in the environment, never in argv.
      { token: "-AQCEAAAAKgAAAAMAAAAAAAAAAZ+x/y=" },
    ]);
    expect(await argumentsFor({ Command: "status" })).toEqual(["status", "--config", host.configFile]);
    expect(await argumentsFor({ Command: "backup", Type: "full", Cluster: "orders" })).toEqual([
      "backup",
      "--config",
      host.configFile,
      "--type=full",
      "--expect-cluster=orders",
    ]);
  });

  it("refuses more than 50 instance ids in one SendCommand, as SSM does", () => {
    expect(() =>
      ssm.sendCommand({
        DocumentName: "Rewind-RunAgent",
        InstanceIds: Array.from({ length: 51 }, () => host.instanceId),
        Parameters: { Command: ["status"] },
      }),
    ).toThrow(/InstanceIds has 51 members; at most 50 are allowed/);
  });

  it("refuses a parameter outside its pattern before anything runs, as SSM does", () => {
    expect(() =>
      ssm.sendCommand({
        DocumentName: "Rewind-RunAgent",
        InstanceIds: [host.instanceId],
        Parameters: { Command: ["backup; reboot"] },
      }),
    ).toThrow(/InvalidParameters: parameter "Command" "backup; reboot" does not match the allowed pattern/);
  });

  it("downloads the agent into a directory, as the SSM Agent does only for a path that ends with a slash", () => {
    expect(document.destinationPath).toBe("/opt/rewind/");
    const source = path.join(scratch.dir, "bundle.mjs");
    writeFileSync(source, "agent");
    // Without the slash, and no such directory, the SSM Agent saves the file as that path.
    const asFile = downloadContent(source, path.join(scratch.dir, "a/opt/rewind"), "abc.mjs");
    expect(asFile).toBe(path.join(scratch.dir, "a/opt/rewind"));
    expect(statSync(asFile).isFile()).toBe(true);
    const inside = downloadContent(source, path.join(scratch.dir, "b/opt/rewind/"), "abc.mjs");
    expect(readFileSync(inside, "utf8")).toBe("agent");
    expect(inside).toBe(path.join(scratch.dir, "b/opt/rewind/abc.mjs"));
    mkdirSync(path.join(scratch.dir, "c/opt/rewind"), { recursive: true });
    expect(downloadContent(source, path.join(scratch.dir, "c/opt/rewind"), "abc.mjs")).toBe(
      path.join(scratch.dir, "c/opt/rewind/abc.mjs"),
    );
    expect(existsSync(path.join(host.dir, "root/opt/rewind", document.downloadedName))).toBe(true);
  });

  it("answers GetCommandInvocation only with the PluginName of a step, as SSM does for a multi-step document", async () => {
    const endpoint = await ssm.listen();
    const client = new SSMClient({
      endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
    });
    const { commandId, invocations } = ssm.sendCommand({
      DocumentName: "Rewind-RunAgent",
      InstanceIds: [host.instanceId],
      Parameters: { Command: ["status"] },
    });
    await invocations[0]!.done;
    await expect(
      client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: host.instanceId })),
    ).rejects.toMatchObject({ name: "InvalidPluginName" });
    const answer = await client.send(
      new GetCommandInvocationCommand({
        CommandId: commandId,
        InstanceId: host.instanceId,
        PluginName: "RunAgent",
      }),
    );
    expect(JSON.parse(answer.StandardOutputContent!.trim())).toEqual(["status", "--config", host.configFile]);
  });

  it("SendCommand above SSM's rate is refused with ThrottlingException, and the Lambdas' SSM client sends it again until it goes through", async () => {
    const resultAgent = path.join(scratch.dir, "result-agent.mjs");
    writeFileSync(
      resultAgent,
      'console.log(JSON.stringify({ ok: true, command: "status", result: { argv: process.argv.slice(2) } }));\n',
    );
    const throttled = new LocalSsm(documents, [host], resultAgent);
    // Two at once, then four a second: ten Lambdas asking together exceed it.
    throttled.throttleSendCommand({ perSecond: 4, burst: 2 });
    const endpoint = await throttled.listen();
    try {
      const client = new SSMClient({
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
        maxAttempts: SSM_MAX_ATTEMPTS,
      });
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          runOnHosts(
            client,
            [host.instanceId],
            { Command: ["status"] },
            {
              documentName: "Rewind-RunAgent",
              timeoutSeconds: 60,
              pollMilliseconds: 100,
              comment: `stampede ${i}`,
            },
          ),
        ),
      );
      expect(answers.flat().map((answer) => answer.problem)).toEqual(Array(10).fill(undefined));
      expect(throttled.throttled).toBeGreaterThan(0);
      process.stderr.write(
        `SendCommand throttled ${throttled.throttled} time(s) for 10 commands, all sent\n`,
      );
      // Without retries the first refusal is the caller's error.
      const once = new SSMClient({
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "sandbox", secretAccessKey: "sandbox" },
        maxAttempts: 1,
      });
      throttled.throttleSendCommand({ perSecond: 0.001, burst: 1 });
      const [first, second] = await Promise.allSettled(
        [0, 1].map(() =>
          runOnHosts(
            once,
            [host.instanceId],
            { Command: ["status"] },
            {
              documentName: "Rewind-RunAgent",
              timeoutSeconds: 60,
              pollMilliseconds: 100,
              comment: "once",
            },
          ),
        ),
      );
      expect([first!.status, second!.status].sort()).toEqual(["fulfilled", "rejected"]);
      const refused = (first!.status === "rejected" ? first : second) as PromiseRejectedResult;
      expect((refused.reason as Error).name).toBe("ThrottlingException");
    } finally {
      throttled.close();
    }
  }, 120_000);

  it("names the SSM Agent version it needs when the host's agent passes no parameters", () => {
    const script = document.runCommand.join("\n");
    const run = spawnSync("bash", ["-c", script], { env: { PATH: process.env.PATH }, encoding: "utf8" });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/Rewind-RunAgent needs SSM Agent 3\.3\.2746\.0 or later/);
  });

  it("the watchdog's Rewind-RunInstalledAgent runs the bundle install left on the host, downloads nothing, and says what to do when there is none", async () => {
    const run = async () => {
      const { invocations } = ssm.sendCommand({
        DocumentName: "Rewind-RunInstalledAgent",
        InstanceIds: [host.instanceId],
        Parameters: { Command: ["binlog-push"] },
      });
      await invocations[0]!.done;
      return invocations[0]!;
    };
    const installed = path.join(host.dir, "root/opt/rewind/rewind-agent.mjs");
    rmSync(installed, { force: true });
    const before = readdirSync(path.join(host.dir, "root/opt/rewind")).sort();
    const missing = await run();
    expect(missing.status).toBe("Failed");
    expect(missing.stderr).toMatch(
      /Rewind is not installed on this host yet .*run Rewind-RunAgent with Command install/,
    );
    expect(readdirSync(path.join(host.dir, "root/opt/rewind")).sort()).toEqual(before);
    copyFileSync(echoAgent, installed);
    const ran = await run();
    expect(ran.status, ran.stderr).toBe("Success");
    expect(JSON.parse(ran.stdout.trim())).toEqual(["binlog-push", "--config", host.configFile]);
    expect(() =>
      ssm.sendCommand({
        DocumentName: "Rewind-RunInstalledAgent",
        InstanceIds: [host.instanceId],
        Parameters: { Command: ["restore"] },
      }),
    ).toThrow(/does not match the allowed pattern/);
  });
});
