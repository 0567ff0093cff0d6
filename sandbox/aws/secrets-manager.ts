import { randomBytes, randomUUID } from "node:crypto";
import type http from "node:http";
import type { IamPrincipal, SandboxIam } from "./iam.js";
import { AwsApiError, jsonCaller, serveAwsJson } from "./json-endpoint.js";
import type { LocalKms } from "./kms.js";
import type { RequestCounts } from "./request-counts.js";

interface SecretVersion {
  readonly id: string;
  /** Undefined for the version RotateSecret labels AWSPENDING until createSecret puts its value. */
  value: string | undefined;
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
    return version?.value === undefined ? undefined : JSON.parse(version.value);
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

  /**
   * The rotation function of each secret (the template's RotationSchedule), invoked by
   * RotateSecret; set by the control plane, which runs the Lambdas.
   */
  rotation?: (secretArn: string, event: RotationEvent) => Promise<void>;

  private answer(
    operation: string,
    input: Record<string, unknown>,
    accessKeyId: string | undefined,
  ): unknown {
    const principal = jsonCaller(this.iam, accessKeyId);
    const id = String(input.SecretId ?? "");
    const secret = [...this.secrets.values()].find((s) => s.name === id || s.arn === id);
    const authorize = (action: string) => {
      // An unknown secret is still authorised first, as AWS does: no hint of what exists.
      if (principal)
        this.iam.authorize({
          principal,
          action,
          resource:
            secret?.arn ?? `arn:aws:secretsmanager:${this.region}:${this.iam.model!.account}:secret:${id}`,
          context: { "secretsmanager:SecretId": secret?.arn ?? id },
        });
    };
    const notFound = new AwsApiError(
      "ResourceNotFoundException",
      "Secrets Manager can't find the specified secret.",
    );
    switch (operation) {
      case "GetSecretValue":
        authorize("secretsmanager:GetSecretValue");
        if (!secret) throw notFound;
        return this.getValue(secret, input, principal);
      case "DescribeSecret":
        authorize("secretsmanager:DescribeSecret");
        if (!secret) throw notFound;
        return {
          ARN: secret.arn,
          Name: secret.name,
          RotationEnabled: true,
          VersionIdsToStages: Object.fromEntries(
            secret.versions.filter((v) => v.stages.length > 0).map((v) => [v.id, v.stages]),
          ),
        };
      case "PutSecretValue": {
        authorize("secretsmanager:PutSecretValue");
        if (!secret) throw notFound;
        this.encryptAs(secret, principal);
        return this.putVersion(secret, input);
      }
      case "UpdateSecretVersionStage":
        authorize("secretsmanager:UpdateSecretVersionStage");
        if (!secret) throw notFound;
        return this.moveStage(secret, input);
      case "GetRandomPassword":
        if (principal)
          this.iam.authorize({ principal, action: "secretsmanager:GetRandomPassword", resource: "*" });
        return { RandomPassword: randomPassword(input) };
      case "RotateSecret":
        throw new AwsApiError(
          "UnsupportedOperationException",
          "the sandbox rotates with LocalSecretsManager.rotate (it runs the steps and waits for them)",
        );
      default:
        throw new AwsApiError(
          "UnsupportedOperationException",
          `the sandbox's Secrets Manager does not offer ${operation}`,
        );
    }
  }

  private getValue(secret: Secret, input: Record<string, unknown>, principal: IamPrincipal | undefined) {
    const stage =
      input.VersionStage !== undefined || input.VersionId === undefined
        ? String(input.VersionStage ?? "AWSCURRENT")
        : undefined;
    // Both given: the version must carry that stage (GetSecretValue, "VersionId" and "VersionStage").
    const version = secret.versions.find(
      (v) =>
        (stage === undefined || v.stages.includes(stage)) &&
        (input.VersionId === undefined || v.id === input.VersionId),
    );
    // RotateSecret's new version has no value until createSecret puts one.
    if (!version || version.value === undefined)
      throw new AwsApiError(
        "ResourceNotFoundException",
        `Secrets Manager can't find the specified secret value for staging label: ${stage ?? ""}`,
      );
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

  /** Secrets Manager encrypts a new version under the secret's key with the caller's permission. */
  private encryptAs(secret: Secret, principal: IamPrincipal | undefined): void {
    if (secret.kmsKeyArn)
      this.kms?.authorizeVia(
        principal,
        "kms:GenerateDataKey",
        secret.kmsKeyArn,
        `secretsmanager.${this.region}.amazonaws.com`,
        {
          SecretARN: secret.arn,
        },
      );
  }

  /**
   * PutSecretValue: a new version with the given stages (AWSCURRENT by default). The same
   * ClientRequestToken with the same value is a no-op; with another value it is refused
   * (API reference, PutSecretValue, ClientRequestToken: idempotency).
   */
  private putVersion(secret: Secret, input: Record<string, unknown>) {
    const token = String(input.ClientRequestToken ?? randomUUID());
    const value = String(input.SecretString ?? "");
    const stages = (input.VersionStages as string[] | undefined) ?? ["AWSCURRENT"];
    const existing = secret.versions.find((v) => v.id === token);
    // RotateSecret's placeholder: createSecret gives it its value (and the stages it asks for).
    if (existing && existing.value === undefined) {
      for (const version of secret.versions)
        if (version !== existing) version.stages = version.stages.filter((s) => !stages.includes(s));
      existing.value = value;
      existing.stages = [...new Set([...existing.stages, ...stages])];
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: existing.stages };
    }
    if (existing) {
      if (existing.value !== value)
        throw new AwsApiError(
          "ResourceExistsException",
          "You can't modify an existing version, you can only create a new version.",
        );
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: existing.stages };
    }
    // The labels move to the new version; the old AWSCURRENT becomes AWSPREVIOUS.
    if (stages.includes("AWSCURRENT")) this.markPrevious(secret);
    for (const version of secret.versions) version.stages = version.stages.filter((s) => !stages.includes(s));
    secret.versions.push({ id: token, value, created: new Date(), stages: [...stages] });
    return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: stages };
  }

  private currentOf(secret: Secret): SecretVersion | undefined {
    return secret.versions.find((v) => v.stages.includes("AWSCURRENT"));
  }

  private markPrevious(secret: Secret): void {
    const current = this.currentOf(secret);
    for (const version of secret.versions) version.stages = version.stages.filter((s) => s !== "AWSPREVIOUS");
    if (current) current.stages = [...current.stages.filter((s) => s !== "AWSCURRENT"), "AWSPREVIOUS"];
  }

  /**
   * UpdateSecretVersionStage: moves a label to MoveToVersionId from RemoveFromVersionId (which
   * must hold it); moving AWSCURRENT labels the old current AWSPREVIOUS, as Secrets Manager does.
   */
  private moveStage(secret: Secret, input: Record<string, unknown>) {
    const stage = String(input.VersionStage ?? "");
    const to = input.MoveToVersionId === undefined ? undefined : String(input.MoveToVersionId);
    const from = input.RemoveFromVersionId === undefined ? undefined : String(input.RemoveFromVersionId);
    const holder = secret.versions.find((v) => v.stages.includes(stage));
    if (holder && to && holder.id !== to && holder.id !== from)
      throw new AwsApiError(
        "InvalidParameterException",
        `The parameter RemoveFromVersionId can't be empty. Staging label ${stage} is currently attached to version ${holder.id}, so you must explicitly reference that version in RemoveFromVersionId.`,
      );
    const target = to ? secret.versions.find((v) => v.id === to) : undefined;
    if (to && !target) throw new AwsApiError("ResourceNotFoundException", `no version ${to}`);
    if (stage === "AWSCURRENT" && target && holder !== target) this.markPrevious(secret);
    else if (holder && from === holder.id) holder.stages = holder.stages.filter((s) => s !== stage);
    if (target && !target.stages.includes(stage)) target.stages.push(stage);
    return { ARN: secret.arn, Name: secret.name };
  }

  /**
   * RotateSecret as Secrets Manager runs it: the new version labelled AWSPENDING (no value yet),
   * then the rotation function invoked with each step in turn (createSecret, setSecret,
   * testSecret, finishSecret); a failing step ends the rotation with its error ("How rotation
   * works"). Synchronous here, so a test sees the outcome.
   */
  async rotate(name: string, token: string = randomUUID()): Promise<string> {
    const secret = this.beginRotation(name, token);
    for (const step of ["createSecret", "setSecret", "testSecret", "finishSecret"] as const) {
      await this.rotation!(secret.arn, { Step: step, SecretId: secret.arn, ClientRequestToken: token });
    }
    return token;
  }

  /** What RotateSecret does before the first step: the new version, labelled AWSPENDING, no value. */
  beginRotation(name: string, token: string = randomUUID()): { arn: string; token: string } {
    const secret = this.secrets.get(name);
    if (!secret) throw new Error(`no secret ${name}`);
    if (!this.rotation) throw new Error(`no rotation function for ${name}`);
    // "If the AWSPENDING staging label is present but not attached to the same version as
    // AWSCURRENT, then any later invocation of RotateSecret assumes that a previous rotation
    // request is still in progress and returns an error" (API reference, RotateSecret).
    const pending = secret.versions.find(
      (v) => v.stages.includes("AWSPENDING") && !v.stages.includes("AWSCURRENT"),
    );
    if (pending)
      throw new AwsApiError(
        "InvalidRequestException",
        `A previous rotation isn't complete (AWSPENDING is on version ${pending.id})`,
      );
    // A label is on one version at a time: a finished rotation may have left AWSPENDING on the current one.
    for (const version of secret.versions) version.stages = version.stages.filter((s) => s !== "AWSPENDING");
    secret.versions.push({ id: token, value: undefined, created: new Date(), stages: ["AWSPENDING"] });
    return { arn: secret.arn, token };
  }

  /** Runs one step of a rotation again, as Secrets Manager's retries do. */
  async rotationStep(name: string, step: RotationEvent["Step"], token: string): Promise<void> {
    const secret = this.secrets.get(name);
    if (!secret || !this.rotation) throw new Error(`no secret or rotation function for ${name}`);
    await this.rotation(secret.arn, { Step: step, SecretId: secret.arn, ClientRequestToken: token });
  }

  /** The stages of each version (what DescribeSecret answers), for tests. */
  stages(name: string): Record<string, string[]> {
    return Object.fromEntries((this.secrets.get(name)?.versions ?? []).map((v) => [v.id, [...v.stages]]));
  }
}

/** The event Secrets Manager invokes a rotation function with. */
export interface RotationEvent {
  readonly Step: "createSecret" | "setSecret" | "testSecret" | "finishSecret";
  readonly SecretId: string;
  readonly ClientRequestToken: string;
}

/** GetRandomPassword: PasswordLength (default 32), ExcludePunctuation, ExcludeCharacters. */
function randomPassword(input: Record<string, unknown>): string {
  const length = Number(input.PasswordLength ?? 32);
  let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  if (input.ExcludePunctuation !== true) alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  const excluded = String(input.ExcludeCharacters ?? "");
  alphabet = [...alphabet].filter((c) => !excluded.includes(c)).join("");
  const bytes = randomBytes(length);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}
