import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";

/**
 * What S3 does with versions, Object Lock and lifecycle in a versioned bucket, modelled by the S3
 * gate because fauxqs keeps one copy per key and applies no rules (docs cited per rule):
 *
 * - An overwrite makes a new current version; the one before becomes noncurrent and is kept
 *   ("Retaining multiple versions of objects with S3 Versioning", S3 User Guide).
 * - A DELETE without a version id deletes nothing: it writes a delete marker, which becomes the
 *   current version (also for a key that has no version); GET and LIST then skip the key
 *   ("Working with delete markers"). A DELETE with a version id removes that version for good;
 *   removing the current one makes the next newest current again.
 * - Object Lock retention is per version: a locked version cannot be deleted by id (governance
 *   mode: unless `x-amz-bypass-governance-retention` and s3:BypassGovernanceRetention), but a
 *   delete marker can always be written ("How S3 Object Lock works").
 * - Lifecycle, evaluated once a day by S3 and here whenever the sandbox's clock moves: noncurrent
 *   versions (and noncurrent delete markers) expire `NoncurrentDays` after they became
 *   noncurrent, a delete marker with no version left behind it goes with
 *   `ExpiredObjectDeleteMarker`, multipart uploads are aborted `DaysAfterInitiation` after they
 *   began, and current versions move to another storage class `Days` after they were written;
 *   lifecycle never removes a version Object Lock still protects ("Lifecycle configuration
 *   elements"; "Managing Object Lock": "Lifecycle ... cannot delete locked object versions").
 *   S3 rounds these to the next midnight UTC; here they count from the exact time.
 *
 * The current version's bytes stay in fauxqs under their key, so every read path works as
 * before; a noncurrent version's bytes move (CopyObject inside fauxqs) to a shadow bucket
 * `<bucket>--versions` under `<versionId>/<key>`. The model is journaled to a file so a
 * restarted stand-in keeps it.
 */
export interface LifecycleRules {
  readonly noncurrentDays?: number;
  readonly expiredObjectDeleteMarker?: boolean;
  readonly abortIncompleteDays?: number;
  readonly transitions?: readonly { readonly days: number; readonly storageClass: string }[];
}

export interface ObjectVersion {
  readonly versionId: string;
  readonly deleteMarker: boolean;
  readonly size: number;
  readonly etag: string;
  readonly lastModified: number;
  /** When an overwrite or a delete made it noncurrent; null while current. */
  noncurrentSince: number | null;
  /** Object Lock: until when it may not be deleted by id; null without a lock. */
  readonly retainUntil: number | null;
  storageClass: string;
}

export interface StorageSummary {
  /** Keys whose current version is an object. */
  readonly objects: number;
  /** Object versions kept, current and noncurrent (delete markers not counted). */
  readonly versions: number;
  readonly noncurrentVersions: number;
  readonly deleteMarkers: number;
  /** Bytes of current versions. */
  readonly liveBytes: number;
  /** Bytes of every version kept, plus each delete marker's key name (what S3 bills for one). */
  readonly keptBytes: number;
  readonly bytesByStorageClass: Record<string, number>;
}

export interface LifecycleOutcome {
  readonly expiredNoncurrent: number;
  readonly expiredDeleteMarkers: number;
  readonly abortedUploads: number;
  readonly transitioned: number;
  /** Noncurrent versions past their expiry that Object Lock still protects. */
  readonly heldByLock: number;
}

const DAY_MS = 86_400_000;

export const shadowBucket = (bucket: string) => `${bucket}--versions`;

/** A request to fauxqs itself, behind the gate: not authorised, not counted. */
export async function upstreamRequest(
  upstream: { host: string; port: number },
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ ...upstream, method, path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.once("end", () =>
        resolve({
          status: response.statusCode ?? 500,
          headers: response.headers,
          body: Buffer.concat(chunks),
        }),
      );
      response.once("error", reject);
    });
    request.once("error", reject);
    request.end(body);
  });
}

const objectPath = (bucket: string, key: string) =>
  `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;

function unescapeXml(text: string): string {
  return text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");
}

export class VersionModel {
  private readonly keys = new Map<string, ObjectVersion[]>();
  private readonly uploads = new Map<string, { bucket: string; key: string; initiated: number }>();

  /** How far the sandbox's clock was moved ahead of the wall clock. */
  private clockOffsetMs = 0;

  constructor(
    private readonly upstream: { host: string; port: number },
    private readonly journal: string,
  ) {
    if (!existsSync(journal)) return;
    for (const line of readFileSync(journal, "utf8").split("\n")) {
      if (!line) continue;
      const entry = JSON.parse(line) as { k: string; v: ObjectVersion[] } | { clockOffsetMs: number };
      if ("clockOffsetMs" in entry) this.clockOffsetMs = entry.clockOffsetMs;
      else if (entry.v.length === 0) this.keys.delete(entry.k);
      else this.keys.set(entry.k, entry.v);
    }
    // Compacted: the clock, then one line per key.
    writeFileSync(
      journal,
      [{ clockOffsetMs: this.clockOffsetMs }, ...[...this.keys].map(([k, v]) => ({ k, v }))]
        .map((entry) => `${JSON.stringify(entry)}\n`)
        .join(""),
    );
  }

  /** The sandbox's time: lock and lifecycle decisions use it. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** Moves the clock ahead (kept across a restart). */
  advance(ms: number): void {
    this.clockOffsetMs += ms;
    appendFileSync(this.journal, `${JSON.stringify({ clockOffsetMs: this.clockOffsetMs })}\n`);
  }

  async createShadowBucket(bucket: string): Promise<void> {
    await upstreamRequest(this.upstream, "PUT", `/${shadowBucket(bucket)}`);
  }

  /**
   * After a restart: an object fauxqs stored whose version the model never recorded (the stand-in
   * was killed between the two) is adopted as the key's current version. On S3 an upload that
   * was answered is a version; here it must not become an object only some listings show.
   */
  async adoptUnrecorded(bucket: string): Promise<number> {
    let adopted = 0;
    let token: string | undefined;
    do {
      const query = `?list-type=2&max-keys=1000${token ? `&continuation-token=${encodeURIComponent(token)}` : ""}`;
      const answer = await upstreamRequest(this.upstream, "GET", `/${bucket}${query}`);
      const xml = answer.body.toString();
      for (const [, raw] of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) {
        const key = unescapeXml(raw!);
        if (this.versionsOf(bucket, key).length > 0) continue;
        if (await this.current(bucket, key)) adopted++;
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
        ? unescapeXml(/<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ?? "")
        : undefined;
    } while (token);
    return adopted;
  }

  /** Newest first. */
  versionsOf(bucket: string, key: string): ObjectVersion[] {
    return this.keys.get(`${bucket}/${key}`) ?? [];
  }

  private save(bucket: string, key: string, versions: ObjectVersion[]): void {
    const k = `${bucket}/${key}`;
    if (versions.length === 0) this.keys.delete(k);
    else this.keys.set(k, versions);
    appendFileSync(this.journal, `${JSON.stringify({ k, v: versions })}\n`);
  }

  private newVersionId(): string {
    return randomBytes(16).toString("base64url");
  }

  private async copy(fromBucket: string, fromKey: string, toBucket: string, toKey: string): Promise<void> {
    const answer = await upstreamRequest(this.upstream, "PUT", objectPath(toBucket, toKey), {
      "x-amz-copy-source": objectPath(fromBucket, fromKey),
    });
    if (answer.status >= 300) {
      throw new Error(`the stand-in could not keep ${fromBucket}/${fromKey}: ${answer.body.toString()}`);
    }
  }

  private async remove(bucket: string, key: string): Promise<void> {
    await upstreamRequest(this.upstream, "DELETE", objectPath(bucket, key));
  }

  /**
   * A key's current version, adopting an object fauxqs holds that the model never saw (written
   * before it existed) as the version "null", as S3 does for objects older than versioning.
   */
  private async current(bucket: string, key: string): Promise<ObjectVersion | undefined> {
    const versions = this.versionsOf(bucket, key);
    if (versions.length > 0) return versions[0];
    const head = await upstreamRequest(this.upstream, "HEAD", objectPath(bucket, key));
    if (head.status !== 200) return undefined;
    const adopted: ObjectVersion = {
      versionId: "null",
      deleteMarker: false,
      size: Number(head.headers["content-length"] ?? 0),
      etag: String(head.headers.etag ?? ""),
      lastModified: this.now(),
      noncurrentSince: null,
      retainUntil: null,
      storageClass: "STANDARD",
    };
    this.save(bucket, key, [adopted]);
    return adopted;
  }

  /** Before an upload replaces the current version: its bytes move to the shadow bucket. */
  async beforeWrite(bucket: string, key: string): Promise<void> {
    const current = await this.current(bucket, key);
    if (current && !current.deleteMarker) {
      await this.copy(bucket, key, shadowBucket(bucket), `${current.versionId}/${key}`);
    }
  }

  /** An upload succeeded: the new current version. Returns its id (x-amz-version-id). */
  async afterWrite(
    bucket: string,
    key: string,
    lock: { readonly days: number } | undefined,
    storageClass = "STANDARD",
  ): Promise<string> {
    const head = await upstreamRequest(this.upstream, "HEAD", objectPath(bucket, key));
    const now = this.now();
    const versions = this.versionsOf(bucket, key);
    if (versions[0]) versions[0].noncurrentSince = now;
    const version: ObjectVersion = {
      versionId: this.newVersionId(),
      deleteMarker: false,
      size: Number(head.headers["content-length"] ?? 0),
      etag: String(head.headers.etag ?? ""),
      lastModified: now,
      noncurrentSince: null,
      retainUntil: lock ? now + lock.days * DAY_MS : null,
      storageClass,
    };
    this.save(bucket, key, [version, ...versions]);
    return version.versionId;
  }

  /** A DELETE without a version id: a delete marker becomes current. Returns the marker's id. */
  async deleteCurrent(bucket: string, key: string): Promise<string> {
    const current = await this.current(bucket, key);
    const now = this.now();
    if (current && !current.deleteMarker) {
      await this.copy(bucket, key, shadowBucket(bucket), `${current.versionId}/${key}`);
      await this.remove(bucket, key);
    }
    if (current) current.noncurrentSince = now;
    const marker: ObjectVersion = {
      versionId: this.newVersionId(),
      deleteMarker: true,
      size: 0,
      etag: "",
      lastModified: now,
      noncurrentSince: null,
      retainUntil: null,
      storageClass: "STANDARD",
    };
    this.save(bucket, key, [marker, ...this.versionsOf(bucket, key)]);
    return marker.versionId;
  }

  /** Whether Object Lock protects this version now. */
  locked(version: ObjectVersion): boolean {
    return !version.deleteMarker && version.retainUntil !== null && version.retainUntil > this.now();
  }

  /**
   * A DELETE with a version id (the caller checked Object Lock): that version is gone for good;
   * when it was current, the next newest becomes current (its bytes back under the key).
   */
  async deleteVersion(bucket: string, key: string, versionId: string): Promise<ObjectVersion | undefined> {
    await this.current(bucket, key);
    const versions = this.versionsOf(bucket, key);
    const index = versions.findIndex((version) => version.versionId === versionId);
    if (index < 0) return undefined;
    const [version] = versions.splice(index, 1) as [ObjectVersion];
    if (index === 0) {
      if (!version.deleteMarker) await this.remove(bucket, key);
      const next = versions[0];
      if (next) {
        next.noncurrentSince = null;
        if (!next.deleteMarker) {
          await this.copy(shadowBucket(bucket), `${next.versionId}/${key}`, bucket, key);
          await this.remove(shadowBucket(bucket), `${next.versionId}/${key}`);
        }
      }
    } else if (!version.deleteMarker) {
      await this.remove(shadowBucket(bucket), `${version.versionId}/${key}`);
    }
    this.save(bucket, key, versions);
    return version;
  }

  /** Where a GET of a version reads from: the key itself (current) or its shadow copy. */
  readPath(
    bucket: string,
    key: string,
    versionId: string,
  ): { path: string } | { missing: "NoSuchVersion" | "MethodNotAllowed" } {
    const versions = this.versionsOf(bucket, key);
    const index = versions.findIndex((version) => version.versionId === versionId);
    if (index < 0) return { missing: "NoSuchVersion" };
    if (versions[index]!.deleteMarker) return { missing: "MethodNotAllowed" };
    return {
      path: index === 0 ? objectPath(bucket, key) : objectPath(shadowBucket(bucket), `${versionId}/${key}`),
    };
  }

  uploadStarted(bucket: string, key: string, uploadId: string): void {
    this.uploads.set(uploadId, { bucket, key, initiated: this.now() });
  }

  uploadEnded(uploadId: string): void {
    this.uploads.delete(uploadId);
  }

  /** ListObjectVersions: every version and marker under `prefix`, by key, newest first. */
  listVersions(
    bucket: string,
    prefix: string,
    options: { keyMarker?: string; versionIdMarker?: string; maxKeys?: number } = {},
  ): { entries: { key: string; version: ObjectVersion; latest: boolean }[]; truncated: boolean } {
    const maxKeys = Math.min(options.maxKeys ?? 1000, 1000);
    const keys = [...this.keys.keys()]
      .filter((k) => k.startsWith(`${bucket}/${prefix}`))
      .map((k) => k.slice(bucket.length + 1))
      .sort();
    const entries: { key: string; version: ObjectVersion; latest: boolean }[] = [];
    const { keyMarker, versionIdMarker } = options;
    for (const key of keys) {
      // After key-marker (and, with a version-id-marker, after that version of it).
      if (keyMarker !== undefined && (key < keyMarker || (key === keyMarker && !versionIdMarker))) continue;
      const versions = this.versionsOf(bucket, key);
      const from =
        key === keyMarker ? versions.findIndex((version) => version.versionId === versionIdMarker) + 1 : 0;
      for (let index = from; index < versions.length; index++) {
        if (entries.length === maxKeys) return { entries, truncated: true };
        entries.push({ key, version: versions[index]!, latest: index === 0 });
      }
    }
    return { entries, truncated: false };
  }

  /** Applies the lifecycle rules as of the model's clock. */
  async applyLifecycle(rules: LifecycleRules): Promise<LifecycleOutcome> {
    const now = this.now();
    let expiredNoncurrent = 0;
    let expiredDeleteMarkers = 0;
    let transitioned = 0;
    let heldByLock = 0;
    for (const k of [...this.keys.keys()]) {
      const bucket = k.slice(0, k.indexOf("/"));
      const key = k.slice(bucket.length + 1);
      let versions = this.versionsOf(bucket, key);
      for (const version of versions) {
        if (version.deleteMarker || version.noncurrentSince !== null) continue;
        for (const transition of rules.transitions ?? []) {
          if (
            now - version.lastModified >= transition.days * DAY_MS &&
            version.storageClass !== transition.storageClass
          ) {
            version.storageClass = transition.storageClass;
            transitioned++;
          }
        }
      }
      if (rules.noncurrentDays !== undefined) {
        for (const version of versions.slice(1)) {
          if (
            version.noncurrentSince === null ||
            now - version.noncurrentSince < rules.noncurrentDays * DAY_MS
          )
            continue;
          if (this.locked(version)) {
            heldByLock++;
            continue;
          }
          await this.deleteVersion(bucket, key, version.versionId);
          expiredNoncurrent++;
        }
      }
      versions = this.versionsOf(bucket, key);
      if (rules.expiredObjectDeleteMarker && versions.length === 1 && versions[0]!.deleteMarker) {
        await this.deleteVersion(bucket, key, versions[0]!.versionId);
        expiredDeleteMarkers++;
      } else if (versions.length > 0) {
        this.save(bucket, key, versions);
      }
    }
    let abortedUploads = 0;
    if (rules.abortIncompleteDays !== undefined) {
      for (const [uploadId, upload] of [...this.uploads]) {
        if (now - upload.initiated < rules.abortIncompleteDays * DAY_MS) continue;
        await upstreamRequest(
          this.upstream,
          "DELETE",
          `${objectPath(upload.bucket, upload.key)}?uploadId=${encodeURIComponent(uploadId)}`,
        );
        this.uploads.delete(uploadId);
        abortedUploads++;
      }
    }
    return { expiredNoncurrent, expiredDeleteMarkers, abortedUploads, transitioned, heldByLock };
  }

  /** What the bucket keeps under `prefix`, every version and marker counted. */
  storage(bucket: string, prefix = "", suffix = ""): StorageSummary {
    let objects = 0;
    let versions = 0;
    let noncurrentVersions = 0;
    let deleteMarkers = 0;
    let liveBytes = 0;
    let keptBytes = 0;
    const bytesByStorageClass: Record<string, number> = {};
    for (const [k, list] of this.keys) {
      if (!k.startsWith(`${bucket}/${prefix}`) || !k.endsWith(suffix)) continue;
      for (const [index, version] of list.entries()) {
        if (version.deleteMarker) {
          deleteMarkers++;
          keptBytes += k.length - bucket.length - 1;
          continue;
        }
        versions++;
        keptBytes += version.size;
        bytesByStorageClass[version.storageClass] =
          (bytesByStorageClass[version.storageClass] ?? 0) + version.size;
        if (index === 0) {
          objects++;
          liveBytes += version.size;
        } else noncurrentVersions++;
      }
    }
    return {
      objects,
      versions,
      noncurrentVersions,
      deleteMarkers,
      liveBytes,
      keptBytes,
      bytesByStorageClass,
    };
  }
}
