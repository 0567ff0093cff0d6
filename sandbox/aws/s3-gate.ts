import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { AccessDenied, type IamModel, type IamPrincipal, type IamRequest, SandboxIam } from "./iam.js";
import { signingAccessKey } from "./json-endpoint.js";
import { RequestCounts } from "./request-counts.js";
import { type LifecycleRules, VersionModel } from "./s3-versions.js";

/** What the gate enforces besides the callers' policies: the bucket's key and Object Lock. */
export interface S3GateRules {
  /** Principals and resource policies; without it every request passes (and is counted). */
  readonly iam?: IamModel;
  /** The bucket's default SSE-KMS key: using it through S3 needs kms:GenerateDataKey / kms:Decrypt. */
  readonly kmsKeyArn?: string;
  /** Buckets with a key of their own (two deployments side by side), instead of kmsKeyArn. */
  readonly bucketKeyArns?: Readonly<Record<string, string>>;
  /** The bucket's default Object Lock retention. */
  readonly objectLock?: { readonly mode: "governance" | "compliance"; readonly days: number };
  /** The bucket's lifecycle rules (from the template), applied whenever the clock moves. */
  readonly lifecycle?: LifecycleRules;
}

/**
 * A fault a test injects at the stand-in (`POST /__sandbox/faults`): requests of the named S3
 * operation whose key contains `keyContains` are answered with `status` and an S3 error `code`
 * (500 InternalError and 503 SlowDown are what S3 answers when it fails a request; SDKs retry
 * them a few times, then give up), until the faults are replaced.
 */
export interface S3Fault {
  readonly operation: string;
  readonly keyContains: string;
  readonly status: number;
  readonly code: string;
}

/** One S3 request as IAM sees it. */
interface S3Operation {
  readonly name: string;
  /** What to authorise: usually one, two for a copy (read the source, write the target). */
  readonly checks: { action: string; resource: string; context?: IamRequest["context"] }[];
  readonly bucket: string;
  readonly key?: string;
}

function header(request: http.IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The S3 API operation, IAM action(s), resource ARN(s) and condition keys of a path-style request. */
export function s3Operation(request: http.IncomingMessage, url: URL): S3Operation {
  const [, bucket = "", ...rest] = url.pathname.split("/");
  const key = rest.length > 0 ? decodeURIComponent(rest.join("/")) : undefined;
  const q = url.searchParams;
  const method = request.method ?? "GET";
  const bucketArn = `arn:aws:s3:::${bucket}`;
  const objectArn = `${bucketArn}/${key ?? ""}`;
  const on = (name: string, action: string, resource: string, context?: IamRequest["context"]) => ({
    name,
    bucket,
    key,
    checks: [{ action, resource, ...(context ? { context } : {}) }],
  });
  if (key === undefined || key === "") {
    if (method === "POST" && q.has("delete")) return { name: "DeleteObjects", bucket, checks: [] };
    if (method === "GET" && q.has("versions"))
      return on("ListObjectVersions", "s3:ListBucketVersions", bucketArn);
    if (method === "GET" && q.has("uploads"))
      return on("ListMultipartUploads", "s3:ListBucketMultipartUploads", bucketArn);
    if (method === "GET" && q.has("location"))
      return on("GetBucketLocation", "s3:GetBucketLocation", bucketArn);
    if (method === "GET" || method === "HEAD") {
      const context: Record<string, string> = {};
      if (q.has("prefix")) context["s3:prefix"] = q.get("prefix")!;
      if (q.has("delimiter")) context["s3:delimiter"] = q.get("delimiter")!;
      if (q.has("max-keys")) context["s3:max-keys"] = q.get("max-keys")!;
      return on(method === "HEAD" ? "HeadBucket" : "ListObjectsV2", "s3:ListBucket", bucketArn, context);
    }
    return on(`${method} bucket`, `s3:${method === "PUT" ? "CreateBucket" : "DeleteBucket"}`, bucketArn);
  }
  const versioned = q.has("versionId");
  if (method === "GET" || method === "HEAD") {
    if (q.has("uploadId")) return on("ListParts", "s3:ListMultipartUploadParts", objectArn);
    if (q.has("attributes"))
      return on(
        "GetObjectAttributes",
        versioned ? "s3:GetObjectVersionAttributes" : "s3:GetObjectAttributes",
        objectArn,
      );
    if (q.has("retention")) return on("GetObjectRetention", "s3:GetObjectRetention", objectArn);
    return on(
      method === "HEAD" ? "HeadObject" : "GetObject",
      versioned ? "s3:GetObjectVersion" : "s3:GetObject",
      objectArn,
    );
  }
  if (method === "DELETE") {
    if (q.has("uploadId")) return on("AbortMultipartUpload", "s3:AbortMultipartUpload", objectArn);
    return on(
      versioned ? "DeleteObjectVersion" : "DeleteObject",
      versioned ? "s3:DeleteObjectVersion" : "s3:DeleteObject",
      objectArn,
    );
  }
  if (method === "PUT" && q.has("retention"))
    return on("PutObjectRetention", "s3:PutObjectRetention", objectArn);
  // PutObject, CopyObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload: s3:PutObject.
  const encryption: Record<string, string> = {};
  for (const name of [
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
  ]) {
    const value = header(request, name);
    if (value !== undefined) encryption[`s3:${name}`] = value;
  }
  const name =
    method === "POST"
      ? q.has("uploads")
        ? "CreateMultipartUpload"
        : "CompleteMultipartUpload"
      : q.has("uploadId")
        ? "UploadPart"
        : header(request, "x-amz-copy-source")
          ? "CopyObject"
          : "PutObject";
  const operation = on(name, "s3:PutObject", objectArn, encryption);
  const copySource = header(request, "x-amz-copy-source");
  if (copySource) {
    const source = decodeURIComponent(copySource.replace(/^\//, "").split("?")[0]!);
    operation.checks.push({ action: "s3:GetObject", resource: `arn:aws:s3:::${source}` });
  }
  return operation;
}

/** A request's whole body (small ones only: XML and JSON). */
async function bodyOf(request: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function escapeXml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

function unescapeXml(text: string): string {
  return text
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'")
    .replaceAll("&amp;", "&");
}

function xmlError(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

/**
 * The S3 front door of the sandbox: every request is authorised against the caller's policies
 * and the bucket policy (by its SigV4 access key), S3's use of the bucket key on the caller's
 * behalf is authorised against the key policy, a missing object answers 403 unless the caller
 * may list the bucket (as S3 does), Object Lock refuses deleting a locked version, and every
 * request is counted by API. Allowed requests are passed through, streamed, to fauxqs.
 */
export class S3Gate {
  readonly counts = new RequestCounts();
  private readonly iam: SandboxIam;
  /**
   * Versions, per-version Object Lock and lifecycle on the gate's clock (s3-versions.ts): the
   * bucket is always versioned, as Rewind's is (Object Lock requires it).
   */
  private readonly versions: VersionModel;
  private faults: readonly S3Fault[] = [];
  private server?: http.Server;

  constructor(
    private readonly upstream: { host: string; port: number },
    private readonly rules: S3GateRules,
    log: (line: string) => void = (line) => console.error(line),
    /** Where the version model is journaled, so a restarted stand-in keeps it. */
    journal: string,
  ) {
    this.iam = new SandboxIam(rules.iam, log);
    this.versions = new VersionModel(upstream, journal);
  }

  /** The sandbox's clock (`POST /__sandbox/clock` moves it ahead): lock and lifecycle time. */
  private now(): number {
    return this.versions.now();
  }

  /** Creates the shadow bucket that keeps noncurrent versions' bytes; adopts unrecorded objects. */
  async prepare(buckets: readonly string[]): Promise<void> {
    for (const bucket of buckets) {
      await this.versions.createShadowBucket(bucket);
      await this.versions.adoptUnrecorded(bucket);
    }
  }

  async listen(port: number): Promise<number> {
    this.server = http.createServer((request, response) => {
      this.handle(request, response).catch((error: Error) => {
        if (!response.headersSent) response.writeHead(500, { "content-type": "application/xml" });
        response.end(xmlError("InternalError", error.message));
      });
    });
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    return (this.server.address() as AddressInfo).port;
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }

  private deny(response: http.ServerResponse, method: string | undefined, error: AccessDenied | string) {
    const message = typeof error === "string" ? error : error.message;
    response.writeHead(403, { "content-type": "application/xml" });
    response.end(method === "HEAD" ? undefined : xmlError("AccessDenied", message));
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://s3.local");
    if (url.pathname === "/__sandbox/counts") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(this.counts.snapshot()));
      if (url.searchParams.has("reset")) this.counts.reset();
      return;
    }
    if (url.pathname === "/__sandbox/clock" && request.method === "POST") {
      // The sandbox's clock moves ahead: Object Lock and lifecycle see that much more time gone.
      const { advanceSeconds = 0 } = JSON.parse((await bodyOf(request)).toString() || "{}") as {
        advanceSeconds?: number;
      };
      this.versions.advance(advanceSeconds * 1000);
      const outcome = await this.versions.applyLifecycle(this.rules.lifecycle ?? {});
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ now: new Date(this.now()).toISOString(), lifecycle: outcome }));
      return;
    }
    if (url.pathname === "/__sandbox/storage") {
      const bucket = url.searchParams.get("bucket") ?? "";
      const summary = this.versions.storage(
        bucket,
        url.searchParams.get("prefix") ?? "",
        url.searchParams.get("suffix") ?? "",
      );
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(summary));
      return;
    }
    if (url.pathname === "/__sandbox/faults" && request.method === "POST") {
      this.faults = JSON.parse((await bodyOf(request)).toString() || "[]") as S3Fault[];
      response.writeHead(204);
      response.end();
      return;
    }
    const operation = s3Operation(request, url);
    this.counts.add("S3", operation.name);
    const fault = this.faults.find(
      (each) => each.operation === operation.name && (operation.key ?? "").includes(each.keyContains),
    );
    if (fault) {
      request.resume();
      response.writeHead(fault.status, { "content-type": "application/xml" });
      response.end(
        xmlError(fault.code, `injected fault: ${fault.code} for ${operation.name} ${operation.key}`),
      );
      return;
    }
    let principal: IamPrincipal | undefined;
    if (this.iam.enforcing) {
      principal = this.iam.principalFor(signingAccessKey(request.headers, url.searchParams));
      if (!principal) {
        response.writeHead(403, { "content-type": "application/xml" });
        response.end(
          xmlError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
        );
        return;
      }
    }
    try {
      for (const check of operation.checks) this.authorize(principal, check);
      this.authorizeKeyUse(principal, operation);
    } catch (error) {
      if (error instanceof AccessDenied) return this.deny(response, request.method, error);
      throw error;
    }
    if (operation.name === "DeleteObjects")
      return this.deleteVersioned(request, response, principal, operation);
    const lockRefusal = this.lockRefusal(request, principal, operation);
    if (lockRefusal) return this.deny(response, request.method, lockRefusal);
    const unchecked = this.checksumRefusal(request, operation);
    if (unchecked) {
      response.writeHead(400, { "content-type": "application/xml" });
      response.end(xmlError("InvalidRequest", unchecked));
      return;
    }
    await this.versioned(request, response, operation, principal, url);
  }

  /** The requests whose answer depends on versions (s3-versions.ts); the rest go through. */
  private async versioned(
    request: http.IncomingMessage,
    response: http.ServerResponse,
    operation: S3Operation,
    principal: IamPrincipal | undefined,
    url: URL,
  ): Promise<void> {
    const versions = this.versions;
    const { bucket, key = "" } = operation;
    const versionId = url.searchParams.get("versionId") ?? undefined;
    switch (operation.name) {
      case "PutObject":
      case "CopyObject":
      case "CompleteMultipartUpload":
        await versions.beforeWrite(bucket, key);
        return this.forward(request, response, operation, principal, undefined, {
          onSuccess: async () => ({
            "x-amz-version-id": await versions.afterWrite(
              bucket,
              key,
              this.rules.objectLock,
              header(request, "x-amz-storage-class") ?? "STANDARD",
            ),
          }),
        });
      case "CreateMultipartUpload":
        return this.forward(request, response, operation, principal, undefined, {
          onBody: (body) => {
            const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString())?.[1];
            if (uploadId) versions.uploadStarted(bucket, key, uploadId);
          },
        });
      case "AbortMultipartUpload":
        versions.uploadEnded(url.searchParams.get("uploadId") ?? "");
        return this.forward(request, response, operation, principal);
      case "DeleteObject": {
        request.resume();
        const marker = await versions.deleteCurrent(bucket, key);
        response.writeHead(204, { "x-amz-delete-marker": "true", "x-amz-version-id": marker });
        response.end();
        return;
      }
      case "DeleteObjectVersion": {
        request.resume();
        const deleted = await versions.deleteVersion(bucket, key, versionId ?? "");
        response.writeHead(204, {
          "x-amz-version-id": versionId ?? "",
          ...(deleted?.deleteMarker ? { "x-amz-delete-marker": "true" } : {}),
        });
        response.end();
        return;
      }
      case "ListObjectVersions":
        request.resume();
        return this.listVersions(response, bucket, url);
      case "GetObject":
      case "HeadObject": {
        if (versionId === undefined) {
          const current = versions.versionsOf(bucket, key)[0];
          return this.forward(request, response, operation, principal, undefined, {
            headers: current && !current.deleteMarker ? { "x-amz-version-id": current.versionId } : {},
          });
        }
        const read = versions.readPath(bucket, key, versionId);
        if ("missing" in read) {
          request.resume();
          const status = read.missing === "NoSuchVersion" ? 404 : 405;
          response.writeHead(status, { "content-type": "application/xml" });
          response.end(
            request.method === "HEAD"
              ? undefined
              : xmlError(read.missing, `version ${versionId} of ${key}: ${read.missing}`),
          );
          return;
        }
        return this.forward(request, response, operation, principal, undefined, {
          path: read.path,
          headers: { "x-amz-version-id": versionId },
        });
      }
      default:
        return this.forward(request, response, operation, principal);
    }
  }

  /** ListObjectVersions, answered from the version model (fauxqs has no versions). */
  private listVersions(response: http.ServerResponse, bucket: string, url: URL): void {
    const q = url.searchParams;
    const prefix = q.get("prefix") ?? "";
    const maxKeys = Number(q.get("max-keys") ?? 1000);
    const { entries, truncated } = this.versions.listVersions(bucket, prefix, {
      ...(q.has("key-marker") ? { keyMarker: q.get("key-marker")! } : {}),
      ...(q.has("version-id-marker") ? { versionIdMarker: q.get("version-id-marker")! } : {}),
      maxKeys,
    });
    const last = entries.at(-1);
    const items = entries.map(({ key, version, latest }) => {
      const common = `<Key>${escapeXml(key)}</Key><VersionId>${version.versionId}</VersionId><IsLatest>${latest}</IsLatest><LastModified>${new Date(version.lastModified).toISOString()}</LastModified>`;
      return version.deleteMarker
        ? `<DeleteMarker>${common}</DeleteMarker>`
        : `<Version>${common}<ETag>${escapeXml(version.etag)}</ETag><Size>${version.size}</Size><StorageClass>${version.storageClass}</StorageClass></Version>`;
    });
    const body = [
      `<?xml version="1.0" encoding="UTF-8"?>`,
      `<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`,
      `<Name>${escapeXml(bucket)}</Name><Prefix>${escapeXml(prefix)}</Prefix>`,
      `<KeyMarker>${escapeXml(q.get("key-marker") ?? "")}</KeyMarker><VersionIdMarker>${escapeXml(q.get("version-id-marker") ?? "")}</VersionIdMarker>`,
      `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>`,
      truncated && last
        ? `<NextKeyMarker>${escapeXml(last.key)}</NextKeyMarker><NextVersionIdMarker>${last.version.versionId}</NextVersionIdMarker>`
        : "",
      ...items,
      `</ListVersionsResult>`,
    ].join("");
    response.writeHead(200, { "content-type": "application/xml" });
    response.end(body);
  }

  /**
   * DeleteObjects on a versioned bucket, answered per object as S3 does: an object without a
   * version id gets a delete marker; one with a version id is removed for good unless IAM
   * (s3:DeleteObjectVersion) or Object Lock refuses it, which is an <Error> for that object only.
   */
  private async deleteVersioned(
    request: http.IncomingMessage,
    response: http.ServerResponse,
    principal: IamPrincipal | undefined,
    operation: S3Operation,
  ): Promise<void> {
    const body = (await bodyOf(request)).toString();
    const quiet = /<Quiet>true<\/Quiet>/i.test(body);
    const objects = [...body.matchAll(/<Object>([\s\S]*?)<\/Object>/g)].map((match) => ({
      key: unescapeXml(/<Key>([^<]*)<\/Key>/.exec(match[1]!)?.[1] ?? ""),
      versionId: /<VersionId>([^<]*)<\/VersionId>/.exec(match[1]!)?.[1],
    }));
    this.counts.add("S3", "DeleteObjects (keys)", objects.length);
    const versions = this.versions;
    const results: string[] = [];
    for (const { key, versionId } of objects) {
      const resource = `arn:aws:s3:::${operation.bucket}/${key}`;
      const fail = (code: string, message: string) =>
        results.push(
          `<Error><Key>${escapeXml(key)}</Key>${versionId ? `<VersionId>${versionId}</VersionId>` : ""}<Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`,
        );
      try {
        this.authorize(principal, {
          action: versionId ? "s3:DeleteObjectVersion" : "s3:DeleteObject",
          resource,
        });
      } catch (error) {
        if (error instanceof AccessDenied) {
          fail("AccessDenied", error.message);
          continue;
        }
        throw error;
      }
      if (versionId === undefined) {
        const marker = await versions.deleteCurrent(operation.bucket, key);
        if (!quiet)
          results.push(
            `<Deleted><Key>${escapeXml(key)}</Key><DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>${marker}</DeleteMarkerVersionId></Deleted>`,
          );
        continue;
      }
      const version = versions.versionsOf(operation.bucket, key).find((each) => each.versionId === versionId);
      if (version && versions.locked(version)) {
        const refusal = this.bypassRefusal(request, principal, operation.bucket, key, version.retainUntil!);
        if (refusal) {
          fail("AccessDenied", refusal);
          continue;
        }
      }
      const deleted = await versions.deleteVersion(operation.bucket, key, versionId);
      if (!quiet)
        results.push(
          `<Deleted><Key>${escapeXml(key)}</Key><VersionId>${versionId}</VersionId>${deleted?.deleteMarker ? "<DeleteMarker>true</DeleteMarker>" : ""}</Deleted>`,
        );
    }
    response.writeHead(200, { "content-type": "application/xml" });
    response.end(
      `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${results.join("")}</DeleteResult>`,
    );
  }

  private authorize(principal: IamPrincipal | undefined, check: S3Operation["checks"][number]): void {
    if (principal) this.iam.authorize({ principal, ...check });
  }

  /** SSE-KMS with the bucket key: S3 asks KMS on the caller's behalf, so the caller needs the key. */
  private authorizeKeyUse(principal: IamPrincipal | undefined, operation: S3Operation): void {
    const kmsKeyArn = this.rules.bucketKeyArns?.[operation.bucket] ?? this.rules.kmsKeyArn;
    if (!principal || !kmsKeyArn) return;
    const action = ["PutObject", "CreateMultipartUpload", "CopyObject"].includes(operation.name)
      ? "kms:GenerateDataKey"
      : operation.name === "GetObject"
        ? "kms:Decrypt"
        : undefined;
    if (!action) return;
    this.iam.authorize({
      principal,
      action,
      resource: kmsKeyArn,
      context: {
        "kms:ViaService": "s3.us-east-1.amazonaws.com",
        "kms:CallerAccount": this.iam.model!.account,
        // With an S3 Bucket Key the encryption context is the bucket's ARN.
        "kms:EncryptionContext:aws:s3:arn": `arn:aws:s3:::${operation.bucket}`,
        "kms:EncryptionContextKeys": ["aws:s3:arn"],
      },
    });
  }

  /** Deleting a locked version needs governance mode, the bypass header and the permission. */
  private lockRefusal(
    request: http.IncomingMessage,
    principal: IamPrincipal | undefined,
    operation: S3Operation,
  ): string | undefined {
    const lock = this.rules.objectLock;
    if (!lock || operation.name !== "DeleteObjectVersion" || !operation.key) return undefined;
    const versionId = new URL(request.url ?? "/", "http://s3.local").searchParams.get("versionId");
    const version = this.versions
      .versionsOf(operation.bucket, operation.key)
      .find((each) => each.versionId === versionId);
    if (!version || !this.versions.locked(version)) return undefined;
    return this.bypassRefusal(request, principal, operation.bucket, operation.key, version.retainUntil!);
  }

  /** A locked version: deleted only in governance mode, with the bypass header and permission. */
  private bypassRefusal(
    request: http.IncomingMessage,
    principal: IamPrincipal | undefined,
    bucket: string,
    key: string,
    until: number,
  ): string | undefined {
    const lock = this.rules.objectLock!;
    const bypass = header(request, "x-amz-bypass-governance-retention") === "true";
    if (lock.mode === "governance" && bypass) {
      try {
        this.authorize(principal, {
          action: "s3:BypassGovernanceRetention",
          resource: `arn:aws:s3:::${bucket}/${key}`,
        });
        return undefined;
      } catch (error) {
        if (error instanceof AccessDenied) return error.message;
        throw error;
      }
    }
    return `Access Denied because object protected by object lock (${lock.mode} until ${new Date(until).toISOString()})`;
  }

  /**
   * With a default Object Lock retention on the bucket, S3 refuses an upload that carries neither
   * Content-MD5 nor an x-amz-checksum-* value: "The Content-MD5 or x-amz-sdk-checksum-algorithm
   * header is required for any request to upload an object with a retention period configured
   * using Amazon S3 Object Lock" (S3 API Reference, PutObject and UploadPart). A signed
   * x-amz-content-sha256 is not enough. The checksum may also come as a trailer (aws-chunked).
   */
  private checksumRefusal(request: http.IncomingMessage, operation: S3Operation): string | undefined {
    if (!this.rules.objectLock || !["PutObject", "UploadPart"].includes(operation.name)) return undefined;
    const names = Object.keys(request.headers);
    const trailer = header(request, "x-amz-trailer") ?? "";
    const checked =
      names.includes("content-md5") ||
      names.some((name) => name.startsWith("x-amz-checksum-") && name !== "x-amz-checksum-type") ||
      trailer.startsWith("x-amz-checksum-");
    return checked
      ? undefined
      : "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters";
  }

  private async forward(
    request: http.IncomingMessage,
    response: http.ServerResponse,
    operation: S3Operation,
    principal: IamPrincipal | undefined,
    body?: Buffer,
    options: {
      /** Another object's path in fauxqs (a noncurrent version's shadow copy). */
      readonly path?: string;
      /** Response headers to add. */
      readonly headers?: Record<string, string>;
      /** After fauxqs succeeded, before answering: more response headers. */
      readonly onSuccess?: () => Promise<Record<string, string>>;
      /** Sees the whole (small) response body of a success. */
      readonly onBody?: (body: Buffer) => void;
    } = {},
  ): Promise<void> {
    const upstream = http.request({
      ...this.upstream,
      method: request.method,
      path: options.path ?? request.url,
      headers: request.headers,
    });
    const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
      upstream.once("response", resolve);
      upstream.once("error", reject);
    });
    if (body) upstream.end(body);
    else request.pipe(upstream);
    let answer: http.IncomingMessage;
    try {
      answer = await answered;
    } catch (error) {
      // fauxqs went away mid-request: the client sees the connection drop, as with S3 down.
      request.socket.destroy(error as Error);
      return;
    }
    const missing =
      answer.statusCode === 404 && (operation.name === "GetObject" || operation.name === "HeadObject");
    if (
      missing &&
      principal &&
      this.iam.decide({
        principal,
        action: "s3:ListBucket",
        resource: `arn:aws:s3:::${operation.bucket}`,
      }) !== "Allowed"
    ) {
      // S3 says 404 only to a caller that may list the bucket; a HEAD or GET carries no s3:prefix.
      answer.resume();
      return this.deny(response, request.method, "Access Denied");
    }
    const ok = (answer.statusCode ?? 500) < 300;
    const headers = {
      ...answer.headers,
      ...options.headers,
      ...(ok && options.onSuccess ? await options.onSuccess() : {}),
    };
    if (ok && options.onBody) {
      const chunks: Buffer[] = [];
      for await (const chunk of answer) chunks.push(chunk as Buffer);
      const whole = Buffer.concat(chunks);
      options.onBody(whole);
      response.writeHead(answer.statusCode ?? 500, headers);
      response.end(whole);
      return;
    }
    response.writeHead(answer.statusCode ?? 500, headers);
    answer.pipe(response);
  }
}
