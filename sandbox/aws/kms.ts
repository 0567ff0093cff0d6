import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type http from "node:http";
import type { IamPrincipal, SandboxIam } from "./iam.js";
import { AwsApiError, jsonCaller, serveAwsJson } from "./json-endpoint.js";
import type { RequestCounts } from "./request-counts.js";

const BLOB_VERSION = 1;

/** The condition keys KMS sets for a request with this encryption context. */
function contextKeys(context: Readonly<Record<string, string>>): Record<string, string | string[]> {
  const keys: Record<string, string | string[]> = { "kms:EncryptionContextKeys": Object.keys(context) };
  for (const [key, value] of Object.entries(context)) keys[`kms:EncryptionContext:${key}`] = value;
  return keys;
}

/** Encryption context as KMS binds it to a ciphertext: independent of key order. */
function contextAad(context: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(JSON.stringify(Object.entries(context).sort(([a], [b]) => a.localeCompare(b))));
}

/**
 * KMS in the sandbox (JSON 1.1, `TrentService`): GenerateDataKey and Decrypt for the keys of the
 * template, each request authorised by IAM with the key policy and the encryption context as
 * condition keys. A ciphertext is the data key sealed with AES-256-GCM under the key's own secret,
 * with the encryption context as additional data: Decrypt with another context, or of a blob
 * made under another key, fails as KMS fails (InvalidCiphertextException, IncorrectKeyException).
 * Other services' use of a key (S3's SSE-KMS, Secrets Manager) is authorised with `kms:ViaService`.
 */
export class LocalKms {
  private readonly keys = new Map<string, Buffer>();
  private server?: http.Server;
  endpoint = "";

  constructor(
    keyArns: readonly string[],
    private readonly iam: SandboxIam,
    private readonly counts?: RequestCounts,
  ) {
    for (const arn of keyArns) this.keys.set(arn, randomBytes(32));
  }

  async listen(): Promise<string> {
    ({ server: this.server, endpoint: this.endpoint } = await serveAwsJson({
      targetPrefix: "TrentService.",
      contentType: "application/x-amz-json-1.1",
      service: "KMS",
      counts: this.counts,
      answer: (operation, input, accessKeyId) => this.answer(operation, input, accessKeyId),
    }));
    return this.endpoint;
  }

  close(): void {
    this.server?.close();
  }

  private keyArn(keyId: unknown): string {
    const id = String(keyId ?? "");
    const arn = this.keys.has(id) ? id : [...this.keys.keys()].find((arn) => arn.endsWith(`:key/${id}`));
    if (!arn) throw new AwsApiError("NotFoundException", `Key '${id}' does not exist`);
    return arn;
  }

  /** Authorises another service's use of a key for `principal` (`kms:ViaService`). */
  authorizeVia(
    principal: IamPrincipal | undefined,
    action: "kms:Decrypt" | "kms:GenerateDataKey",
    keyArn: string,
    service: string,
    context: Readonly<Record<string, string>> = {},
  ): void {
    this.counts?.add("KMS", `${action.slice(4)} (via ${service.split(".")[0]})`);
    if (!principal) return;
    this.iam.authorize({
      principal,
      action,
      resource: keyArn,
      context: {
        "kms:ViaService": service,
        "kms:CallerAccount": this.iam.model!.account,
        ...contextKeys(context),
      },
    });
  }

  private answer(
    operation: string,
    input: Record<string, unknown>,
    accessKeyId: string | undefined,
  ): unknown {
    const principal = jsonCaller(this.iam, accessKeyId);
    const context = (input.EncryptionContext ?? {}) as Record<string, string>;
    const authorize = (action: string, keyArn: string) => {
      if (principal)
        this.iam.authorize({
          principal,
          action,
          resource: keyArn,
          context: { "kms:CallerAccount": this.iam.model!.account, ...contextKeys(context) },
        });
    };
    switch (operation) {
      case "GenerateDataKey": {
        const keyArn = this.keyArn(input.KeyId);
        authorize("kms:GenerateDataKey", keyArn);
        const bytes = Number(input.NumberOfBytes ?? (input.KeySpec === "AES_128" ? 16 : 32));
        const plaintext = randomBytes(bytes);
        return {
          KeyId: keyArn,
          Plaintext: plaintext.toString("base64"),
          CiphertextBlob: this.seal(keyArn, plaintext, context).toString("base64"),
        };
      }
      case "Decrypt": {
        const blob = Buffer.from(String(input.CiphertextBlob ?? ""), "base64");
        const keyArn = this.blobKey(blob);
        if (input.KeyId !== undefined && this.keyArn(input.KeyId) !== keyArn)
          throw new AwsApiError(
            "IncorrectKeyException",
            "The key ID in the request does not identify the key that encrypted the ciphertext.",
          );
        authorize("kms:Decrypt", keyArn);
        return { KeyId: keyArn, Plaintext: this.open(keyArn, blob, context).toString("base64") };
      }
      default:
        throw new AwsApiError(
          "UnsupportedOperationException",
          `the sandbox's KMS does not offer ${operation}`,
        );
    }
  }

  private seal(keyArn: string, plaintext: Buffer, context: Readonly<Record<string, string>>): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.keys.get(keyArn)!, iv);
    cipher.setAAD(contextAad(context));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const arn = Buffer.from(keyArn);
    const header = Buffer.alloc(3);
    header.writeUInt8(BLOB_VERSION, 0);
    header.writeUInt16BE(arn.length, 1);
    return Buffer.concat([header, arn, iv, cipher.getAuthTag(), sealed]);
  }

  private blobKey(blob: Buffer): string {
    const invalid = new AwsApiError("InvalidCiphertextException", "The ciphertext is not one this KMS made.");
    if (blob.length < 3 || blob.readUInt8(0) !== BLOB_VERSION) throw invalid;
    const arn = blob.subarray(3, 3 + blob.readUInt16BE(1)).toString();
    if (!this.keys.has(arn)) throw invalid;
    return arn;
  }

  private open(keyArn: string, blob: Buffer, context: Readonly<Record<string, string>>): Buffer {
    const start = 3 + blob.readUInt16BE(1);
    const decipher = createDecipheriv(
      "aes-256-gcm",
      this.keys.get(keyArn)!,
      blob.subarray(start, start + 12),
    );
    decipher.setAAD(contextAad(context));
    decipher.setAuthTag(blob.subarray(start + 12, start + 28));
    try {
      return Buffer.concat([decipher.update(blob.subarray(start + 28)), decipher.final()]);
    } catch {
      // KMS says no more than this when the encryption context does not match.
      throw new AwsApiError("InvalidCiphertextException", "");
    }
  }
}
