import { randomUUID } from "node:crypto";
import type http from "node:http";
import type { SandboxIam } from "./iam.js";
import { AwsApiError, jsonCaller, serveAwsJson } from "./json-endpoint.js";
import type { LocalKms } from "./kms.js";
import type { RequestCounts } from "./request-counts.js";

interface SecretVersion {
  readonly id: string;
  readonly value: string;
  readonly created: Date;
  stages: string[];
}

interface Secret {
  readonly name: string;
  readonly arn: string;
  /** The KMS key the secret is encrypted under; reading it needs kms:Decrypt through Secrets Manager. */
  readonly kmsKeyArn?: string;
  readonly versions: SecretVersion[];
}

/**
 * Secrets Manager in the sandbox (JSON 1.1): the secrets of the template, GetSecretValue by name
 * or ARN with VersionId or VersionStage (AWSCURRENT by default, AWSPREVIOUS after a rotation),
 * each read authorised by IAM and, for a secret under a customer key, the KMS Decrypt that
 * Secrets Manager makes on the caller's behalf.
 */
export class LocalSecretsManager {
  private readonly secrets = new Map<string, Secret>();
  private server?: http.Server;
  endpoint = "";

  constructor(
    private readonly iam: SandboxIam,
    private readonly kms?: LocalKms,
    private readonly counts?: RequestCounts,
    private readonly region = "us-east-1",
  ) {}

  /** Declares a secret (as the stack creates it); its value comes with `put`. */
  define(name: string, arn: string, kmsKeyArn?: string): void {
    if (!this.secrets.has(name)) this.secrets.set(name, { name, arn, kmsKeyArn, versions: [] });
  }

  /** PutSecretValue as an administrator would: the new version is AWSCURRENT, the old one AWSPREVIOUS. */
  put(name: string, value: unknown): void {
    this.define(name, `arn:aws:secretsmanager:${this.region}:123456789012:secret:${name}-Rw1nd0`);
    const secret = this.secrets.get(name)!;
    for (const version of secret.versions) {
      version.stages = version.stages.includes("AWSCURRENT") ? ["AWSPREVIOUS"] : [];
    }
    secret.versions.push({
      id: randomUUID(),
      value: typeof value === "string" ? value : JSON.stringify(value),
      created: new Date(),
      stages: ["AWSCURRENT"],
    });
  }

  /** Whether the secret has a value (AWSCURRENT). */
  has(name: string): boolean {
    return this.current(name) !== undefined;
  }

  /** The current value, parsed (what the sandbox created a database user with). */
  current(name: string): unknown {
    const version = this.secrets.get(name)?.versions.find((v) => v.stages.includes("AWSCURRENT"));
    return version ? JSON.parse(version.value) : undefined;
  }

  async listen(): Promise<string> {
    ({ server: this.server, endpoint: this.endpoint } = await serveAwsJson({
      targetPrefix: "secretsmanager.",
      contentType: "application/x-amz-json-1.1",
      service: "SecretsManager",
      counts: this.counts,
      answer: (operation, input, accessKeyId) => this.answer(operation, input, accessKeyId),
    }));
    return this.endpoint;
  }

  close(): void {
    this.server?.close();
  }

  /** Lets the process exit while it listens (a test's stand-in that nobody closes). */
  unref(): void {
    this.server?.unref();
  }

  private answer(
    operation: string,
    input: Record<string, unknown>,
    accessKeyId: string | undefined,
  ): unknown {
    if (operation !== "GetSecretValue")
      throw new AwsApiError(
        "UnsupportedOperationException",
        `the sandbox's Secrets Manager does not offer ${operation}`,
      );
    const principal = jsonCaller(this.iam, accessKeyId);
    const id = String(input.SecretId ?? "");
    const secret = [...this.secrets.values()].find((s) => s.name === id || s.arn === id);
    const notFound = new AwsApiError(
      "ResourceNotFoundException",
      "Secrets Manager can't find the specified secret.",
    );
    // An unknown secret is still authorised first, as AWS does: no hint of what exists.
    if (principal)
      this.iam.authorize({
        principal,
        action: "secretsmanager:GetSecretValue",
        resource:
          secret?.arn ?? `arn:aws:secretsmanager:${this.region}:${this.iam.model!.account}:secret:${id}`,
        context: { "secretsmanager:SecretId": secret?.arn ?? id },
      });
    if (!secret) throw notFound;
    const stage = input.VersionId === undefined ? String(input.VersionStage ?? "AWSCURRENT") : undefined;
    const version = secret.versions.find((v) =>
      stage ? v.stages.includes(stage) : v.id === input.VersionId,
    );
    if (!version) throw notFound;
    if (secret.kmsKeyArn)
      this.kms?.authorizeVia(
        principal,
        "kms:Decrypt",
        secret.kmsKeyArn,
        `secretsmanager.${this.region}.amazonaws.com`,
        {
          SecretARN: secret.arn,
          SecretVersionId: version.id,
        },
      );
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      SecretString: version.value,
      VersionStages: version.stages,
      CreatedDate: version.created.getTime() / 1000,
    };
  }
}
