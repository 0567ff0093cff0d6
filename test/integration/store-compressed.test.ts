import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import {
  type EncryptedDataKey,
  KeyringNode,
  type NodeDecryptionMaterial,
  type NodeEncryptionMaterial,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeCompressed } from "../../host-agent/binlog/ship-file.js";
import { s3Client } from "../../host-agent/clients.js";
import { S3Server } from "../../infra/local/s3-server.js";
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

/** The one upload path of binlog chunks and whole binlogs (issue 18, defect 3). */
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
        encryptionContext: { cluster: "orders", source: "1-db1", file: "mariadb-bin.000001", chunk: "0" },
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
    const { stored } = await store(keyring, "orders/binlogs/1-db1/chunks/mariadb-bin.000001/000000.zst.enc");
    expect(stored.size).toBeGreaterThan(0);
    expect(keyring.dataKeys).toBe(1);
  });

  it("a data key refused by KMS fails the upload with a named error, and the process lives on", async () => {
    const keyring = new CountingKeyring(aes(), true);
    await expect(
      store(keyring, "orders/binlogs/1-db1/chunks/mariadb-bin.000001/000001.zst.enc"),
    ).rejects.toMatchObject({ name: "UploadFailed", message: expect.stringMatching(/ThrottlingException/) });
  });
});
