import { createHash, type Hash } from "node:crypto";
import { Writable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { PartChecksum, SegmentRecord } from "../../core/manifest.js";
import { compositeChecksum } from "../../core/store/segment-check.js";

export interface SegmentWriterOptions {
  readonly client: S3Client;
  readonly bucket: string;
  readonly keyFor: (index: number) => string;
  readonly partSize: number;
  readonly segmentSize: number;
  /** Parts in flight at once; memory is about (concurrency + 1) × partSize. */
  readonly concurrency: number;
  /** Called when a multipart upload starts and ends, so a killed agent's uploads can be found later. */
  readonly onUploadStarted?: (key: string, uploadId: string) => void;
  readonly onUploadEnded?: (key: string) => void;
}

interface OpenSegment {
  readonly index: number;
  readonly key: string;
  /** Set once its first part is sent: a segment smaller than a part is one PutObject instead. */
  uploadId?: string;
  readonly hash: Hash;
  readonly parts: (PartChecksum & { etag: string })[];
  bytes: number;
}

/**
 * Cuts one logical byte stream into segment objects of at most `segmentSize` bytes, each a
 * multipart upload of `partSize` parts with a SHA-256 checksum on every part, or, for a segment
 * smaller than one part (a minute's binlog), a single PutObject with its SHA-256: one request
 * instead of three. Memory stays flat whatever the stream's length (DESIGN §7). Hashes the whole
 * stream on the way.
 */
export class SegmentWriter extends Writable {
  readonly segments: SegmentRecord[] = [];
  readonly streamHash = createHash("sha256");
  bytesWritten = 0;
  private segment?: OpenSegment;
  private buffer: Buffer;
  private filled = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure?: Error;

  /** Part buffers are reused: a fresh 8 MiB buffer per part would leave the GC far behind. */
  private readonly spareBuffers: Buffer[] = [];

  constructor(private readonly options: SegmentWriterOptions) {
    super({ highWaterMark: 1024 * 1024 });
    this.buffer = Buffer.allocUnsafe(options.partSize);
  }

  private takeBuffer(): Buffer {
    return this.spareBuffers.pop() ?? Buffer.allocUnsafe(this.options.partSize);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.consume(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      if (this.bytesWritten === 0) throw new Error("the stream to upload was empty");
      if (this.segment && !this.segment.uploadId) return this.putSingle(this.segment);
      await this.flushPart();
      await this.completeSegment();
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const open = this.segment;
    this.segment = undefined;
    if (!open?.uploadId) {
      callback(error);
      return;
    }
    Promise.allSettled(this.inFlight)
      .then(() =>
        this.options.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.options.bucket,
            Key: open.key,
            UploadId: open.uploadId!,
          }),
        ),
      )
      .then(
        () => this.options.onUploadEnded?.(open.key),
        () => {},
      )
      .finally(() => callback(error));
  }

  private async consume(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.failure) throw this.failure;
      if (this.segment && this.segment.bytes === this.options.segmentSize) await this.completeSegment();
      const segment = this.segment ?? this.openSegment();
      const room = Math.min(
        this.options.partSize - this.filled,
        this.options.segmentSize - segment.bytes,
        chunk.length - at,
      );
      const piece = chunk.subarray(at, at + room);
      piece.copy(this.buffer, this.filled);
      this.filled += room;
      segment.bytes += room;
      segment.hash.update(piece);
      this.streamHash.update(piece);
      this.bytesWritten += room;
      at += room;
      if (this.filled === this.options.partSize || segment.bytes === this.options.segmentSize) {
        await this.flushPart();
      }
    }
  }

  private openSegment(): OpenSegment {
    const index = this.segments.length;
    this.segment = {
      index,
      key: this.options.keyFor(index),
      hash: createHash("sha256"),
      parts: [],
      bytes: 0,
    };
    return this.segment;
  }

  /** Starts the segment's multipart upload, when its first part is ready. */
  private async startUpload(segment: OpenSegment): Promise<string> {
    const created = await this.options.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.options.bucket,
        Key: segment.key,
        ChecksumAlgorithm: "SHA256",
      }),
    );
    if (!created.UploadId) throw new Error(`S3 returned no upload id for ${segment.key}`);
    this.options.onUploadStarted?.(segment.key, created.UploadId);
    segment.uploadId = created.UploadId;
    return created.UploadId;
  }

  /** A segment smaller than one part: one PutObject, checked against its SHA-256. */
  private async putSingle(segment: OpenSegment): Promise<void> {
    const body = this.buffer.subarray(0, this.filled);
    const checksumSha256 = createHash("sha256").update(body).digest("base64");
    const put = await this.options.client.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: segment.key,
        Body: body,
        ContentLength: body.length,
        ChecksumSHA256: checksumSha256,
      }),
    );
    if (put.ChecksumSHA256 && put.ChecksumSHA256 !== checksumSha256) {
      throw new Error(`S3 stored ${segment.key} with checksum ${put.ChecksumSHA256}, not ${checksumSha256}`);
    }
    this.filled = 0;
    this.segment = undefined;
    this.recordSegment(segment, [{ partNumber: 1, size: body.length, checksumSha256 }], "single");
  }

  private recordSegment(segment: OpenSegment, parts: PartChecksum[], upload?: "single"): void {
    this.segments.push({
      index: segment.index,
      key: segment.key,
      size: segment.bytes,
      sha256: segment.hash.digest("hex"),
      partSize: this.options.partSize,
      parts,
      ...(upload ? { upload } : {}),
    });
  }

  /** Sends the buffered part without waiting for it, unless `concurrency` parts are in flight. */
  private async flushPart(): Promise<void> {
    const segment = this.segment;
    if (!segment || this.filled === 0) return;
    const uploadId = segment.uploadId ?? (await this.startUpload(segment));
    while (this.inFlight.size >= this.options.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const body = this.buffer.subarray(0, this.filled);
    const partNumber = segment.parts.length + 1;
    const checksumSha256 = createHash("sha256").update(body).digest("base64");
    const record = { partNumber, size: body.length, checksumSha256, etag: "" };
    segment.parts.push(record);
    const partBuffer = this.buffer;
    this.buffer = this.takeBuffer();
    this.filled = 0;
    const upload = this.options.client
      .send(
        new UploadPartCommand({
          Bucket: this.options.bucket,
          Key: segment.key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ChecksumSHA256: checksumSha256,
        }),
      )
      .then((result) => {
        if (!result.ETag) throw new Error(`S3 returned no ETag for part ${partNumber} of ${segment.key}`);
        if (result.ChecksumSHA256 && result.ChecksumSHA256 !== checksumSha256) {
          throw new Error(`S3 stored part ${partNumber} of ${segment.key} with a different checksum`);
        }
        record.etag = result.ETag;
      })
      .catch((error: Error) => {
        this.failure ??= new Error(`upload of part ${partNumber} of ${segment.key} failed: ${error.message}`);
      })
      .finally(() => {
        this.inFlight.delete(upload);
        this.spareBuffers.push(partBuffer);
      });
    this.inFlight.add(upload);
  }

  private async completeSegment(): Promise<void> {
    const segment = this.segment;
    if (!segment) return;
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
    const parts = segment.parts.map(({ partNumber, size, checksumSha256 }) => ({
      partNumber,
      size,
      checksumSha256,
    }));
    const completed = await this.options.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.options.bucket,
        Key: segment.key,
        UploadId: segment.uploadId!,
        MultipartUpload: {
          Parts: segment.parts.map((part) => ({
            PartNumber: part.partNumber,
            ETag: part.etag,
            ChecksumSHA256: part.checksumSha256,
          })),
        },
      }),
    );
    const expected = compositeChecksum(parts);
    if (completed.ChecksumSHA256 && completed.ChecksumSHA256 !== expected) {
      throw new Error(
        `S3 reports checksum ${completed.ChecksumSHA256} for ${segment.key}, but the parts sent make ${expected}`,
      );
    }
    this.segment = undefined;
    this.options.onUploadEnded?.(segment.key);
    this.recordSegment(segment, parts);
  }
}
