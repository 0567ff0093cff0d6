import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import {
  type EncryptedDataKey,
  KeyringNode,
  type NodeDecryptionMaterial,
  type NodeEncryptionMaterial,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { GetObjectAttributesCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BINLOG_CHUNK_FORMAT_VERSION } from "../../core/binlog/chunk.js";
import { binlogChunkKey } from "../../core/layout.js";
import { ENCRYPTION_SUITE } from "../../core/manifest.js";
import { listFileChunks, readChunkHeader } from "../../core/store/binlog-chunks.js";
import { type ChunkFacts, fetchChunk, storeChunk } from "../../host-agent/binlog/chunk-object.js";
import { storeCompressed } from "../../host-agent/binlog/ship-file.js";
import { s3Client } from "../../host-agent/clients.js";
import { cachedDataKeys } from "../../host-agent/encryption.js";
import { WHOLE_OBJECT_PART_BYTES } from "../../host-agent/s3/put-whole.js";
import { S3Server } from "../../sandbox/aws/s3-server.js";
import { BUCKET, scratchDir } from "../support.js";

process.env.AWS_ACCESS_KEY_ID ??= "sandbox";
process.env.AWS_SECRET_ACCESS_KEY ??= "sandbox";

/** A keyring that counts the data keys asked of it, or refuses them as KMS does when it fails. */
class CountingKeyring extends KeyringNode {
  dataKeys = 0;
  constructor(
    private readonly inner: KeyringNode,
    private readonly refuse = false,
  ) {
    super();
  }
  async _onEncrypt(material: NodeEncryptionMaterial) {
    this.dataKeys++;
    if (this.refuse) throw new Error("KMS: ThrottlingException: Rate exceeded");
    return this.inner.onEncrypt(material);
  }
  async _onDecrypt(material: NodeDecryptionMaterial, keys: EncryptedDataKey[]) {
    return this.inner.onDecrypt(material, keys);
  }
}

/** The upload path of whole binlogs (issue 18, defect 3). */
describe("storeCompressed", () => {
  const scratch = scratchDir("store");
  let s3: S3Server;
  const aes = () =>
    new RawAesKeyringNode({
      keyName: "test",
      keyNamespace: "rewind",
      unencryptedMasterKey: randomBytes(32),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  const store = (keyring: KeyringNode, key: string) =>
    storeCompressed(
      Readable.from([randomBytes(64 * 1024)]),
      {
        client: s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint }),
        bucket: BUCKET,
        key,
        keyring,
        encryptionContext: { cluster: "orders", source: "1-db1", file: "mariadb-bin.000001" },
        compressionLevel: 3,
        partSize: 5 * 1024 * 1024,
        concurrency: 2,
      },
      `shipping ${key}`,
    );

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
  });
  afterAll(async () => {
    await s3?.stop();
    scratch.remove();
  });

  it("asks for one data key per object", async () => {
    const keyring = new CountingKeyring(aes());
    const { stored } = await store(keyring, "orders/binlogs/1-db1/mariadb-bin.000001.zst.enc");
    expect(stored.size).toBeGreaterThan(0);
    expect(keyring.dataKeys).toBe(1);
  });

  it("a data key refused by KMS fails the upload with a named error, and the process lives on", async () => {
    const keyring = new CountingKeyring(aes(), true);
    await expect(store(keyring, "orders/binlogs/1-db1/mariadb-bin.000002.zst.enc")).rejects.toMatchObject({
      name: "UploadFailed",
      message: expect.stringMatching(/ThrottlingException/),
    });
  });
});

/** Binlog chunks: one object each, one data key per file (issue 18: one upload per chunk, cached keys). */
describe("storeChunk and fetchChunk", () => {
  const scratch = scratchDir("chunk-object");
  let s3: S3Server;
  const location = { cluster: "orders" };
  const keyring = () =>
    new RawAesKeyringNode({
      keyName: "test",
      keyNamespace: "rewind",
      unencryptedMasterKey: Buffer.alloc(32, 7),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
  const client = () => s3Client({ region: "us-east-1", s3Endpoint: s3.endpoint });
  const facts = (file: string, chunk: number, start: number, bytes: Buffer): ChunkFacts => ({
    formatVersion: BINLOG_CHUNK_FORMAT_VERSION,
    cluster: "orders",
    engine: "mariadb",
    source: "1-db1",
    file,
    chunk,
    previousFile: null,
    serverVersion: "10.11.19-MariaDB",
    startOffset: start,
    endOffset: start + bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    fileGtidsBefore: "",
    gtidsAdded: `0-1-${chunk + 1}`,
    firstGtid: "0-1-1",
    lastGtid: `0-1-${chunk + 1}`,
    chunkFirstGtid: `0-1-${chunk + 1}`,
    firstEventTime: null,
    lastEventTime: null,
    lastCommitTime: null,
    transactions: chunk + 1,
    chunkTransactions: 1,
    encryption: {
      suite: ENCRYPTION_SUITE,
      frameLength: 1 << 20,
      keyId: "raw-aes:rewind/test",
      context: { cluster: "orders", source: "1-db1", file },
    },
    shippedAt: new Date().toISOString(),
    agentVersion: "test",
  });
  /** Ships `count` chunks of `file` through one materials manager; what S3 then holds of the file. */
  async function ship(materials: ReturnType<typeof cachedDataKeys>, file: string, count: number) {
    const pieces: Buffer[] = [];
    let start = 0;
    for (let chunk = 0; chunk < count; chunk++) {
      const bytes = randomBytes(10_000 + chunk);
      await storeChunk({
        client: client(),
        bucket: BUCKET,
        key: binlogChunkKey(location, "1-db1", file, start, start + bytes.length),
        materials,
        compressionLevel: 3,
        bytes,
        facts: facts(file, chunk, start, bytes),
      });
      pieces.push(bytes);
      start += bytes.length;
    }
    return { pieces, listing: await listFileChunks(client(), BUCKET, location, "1-db1", file) };
  }

  beforeAll(async () => {
    s3 = await S3Server.start({ storageDir: `${scratch.dir}/s3`, buckets: [BUCKET] });
  });
  afterAll(async () => {
    await s3?.stop();
    scratch.remove();
  });

  it("stores each chunk as one object under its byte range, with one data key for the whole file", async () => {
    const counting = new CountingKeyring(keyring());
    const materials = cachedDataKeys(counting);
    const { pieces, listing } = await ship(materials, "mariadb-bin.000001", 5);
    expect(listing.chain.map((chunk) => chunk.end - chunk.start)).toEqual(
      pieces.map((piece) => piece.length),
    );
    expect(listing.beyond).toEqual([]);
    expect(counting.dataKeys).toBe(1);
    // Another file, another context: its own data key.
    await ship(materials, "mariadb-bin.000002", 2);
    expect(counting.dataKeys).toBe(2);
    // The newest chunk's header says what the prefix holds: one ranged GET.
    const header = await readChunkHeader(client(), BUCKET, listing.chain.at(-1)!);
    expect(header).toMatchObject({ chunk: 4, transactions: 5, lastGtid: "0-1-5" });
    // Read back, each chunk checked: the file's bytes exactly.
    const fetched: Buffer[] = [];
    for (const [index, chunk] of listing.chain.entries()) {
      const { bytes } = await fetchChunk({
        client: client(),
        bucket: BUCKET,
        chunk,
        index,
        materials: cachedDataKeys(keyring()),
        expectedContext: { cluster: "orders", source: "1-db1", file: "mariadb-bin.000001" },
        label: `chunk ${index}`,
      });
      fetched.push(bytes);
    }
    expect(Buffer.concat(fetched).equals(Buffer.concat(pieces))).toBe(true);
  });

  it("a chunk bigger than a part (one large transaction) goes up as a multipart upload and reads back whole", async () => {
    const file = "mariadb-bin.000009";
    // Incompressible: 12 MiB stored, over WHOLE_OBJECT_PART_BYTES (and fauxqs's 11 MiB request limit).
    const bytes = randomBytes(12 * 1024 * 1024);
    const key = binlogChunkKey(location, "1-db1", file, 0, bytes.length);
    const manifest = await storeChunk({
      client: client(),
      bucket: BUCKET,
      key,
      materials: cachedDataKeys(keyring()),
      compressionLevel: 3,
      bytes,
      facts: facts(file, 0, 0, bytes),
    });
    expect(manifest.storedBytes).toBeGreaterThan(WHOLE_OBJECT_PART_BYTES);
    const listing = await listFileChunks(client(), BUCKET, location, "1-db1", file);
    const attributes = await client().send(
      new GetObjectAttributesCommand({ Bucket: BUCKET, Key: key, ObjectAttributes: ["ObjectParts"] }),
    );
    expect(attributes.ObjectParts?.TotalPartsCount).toBe(2);
    const { bytes: fetched } = await fetchChunk({
      client: client(),
      bucket: BUCKET,
      chunk: listing.chain[0]!,
      index: 0,
      materials: cachedDataKeys(keyring()),
      expectedContext: { cluster: "orders", source: "1-db1", file },
      label: "chunk 0",
    });
    expect(fetched.equals(bytes)).toBe(true);
  });

  it("refuses a chunk whose stored bytes changed, or that another file's chunk replaced", async () => {
    const { listing } = await ship(cachedDataKeys(keyring()), "mariadb-bin.000003", 2);
    const chunk = listing.chain[1]!;
    const fetch = (expectedContext: Record<string, string>) =>
      fetchChunk({
        client: client(),
        bucket: BUCKET,
        chunk,
        index: 1,
        materials: keyring(),
        expectedContext,
        label: "chunk 1 of mariadb-bin.000003",
      });
    await expect(
      fetch({ cluster: "orders", source: "1-db1", file: "mariadb-bin.000004" }),
    ).rejects.toMatchObject({
      name: "VerifyFailed",
      message: expect.stringMatching(/cannot be decoded .*belongs to another file/),
    });
    const body = readFileSync(s3.objectPath(BUCKET, chunk.key));
    body[body.length - 100]! ^= 1;
    writeFileSync(s3.objectPath(BUCKET, chunk.key), body);
    await expect(
      fetch({ cluster: "orders", source: "1-db1", file: "mariadb-bin.000003" }),
    ).rejects.toMatchObject({
      name: "VerifyFailed",
      // S3's own checksum catches it first; the header's SHA-256 would, were it not sent.
      message: expect.stringContaining("does not match the checksum S3 stored"),
    });
  });

  it("a data key refused by KMS fails the chunk with a named error, and nothing is stored", async () => {
    const materials = cachedDataKeys(new CountingKeyring(keyring(), true));
    await expect(ship(materials, "mariadb-bin.000005", 1)).rejects.toMatchObject({
      name: "UploadFailed",
      message: expect.stringMatching(/ThrottlingException/),
    });
    const listing = await listFileChunks(client(), BUCKET, location, "1-db1", "mariadb-bin.000005");
    expect(listing.chain).toEqual([]);
  });
});
