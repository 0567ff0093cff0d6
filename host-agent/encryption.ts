import { readFileSync } from "node:fs";
import type { Duplex, Readable, Writable } from "node:stream";
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  getClient,
  getLocalCryptographicMaterialsCache,
  type KeyringNode,
  KMS,
  KmsKeyringNode,
  NodeCachingMaterialsManager,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from "@aws-crypto/client-node";
import { configError } from "../core/errors.js";
import { ENCRYPTION_SUITE, type EncryptionRecord } from "../core/manifest.js";
import type { AgentConfig } from "./config.js";

/** 1 MiB frames (DESIGN §3): bounded memory, and damage is found within a frame. */
export const FRAME_LENGTH = 1024 * 1024;
const LOCAL_KEY_NAMESPACE = "rewind-local";

const client = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

export interface DataKeyring {
  readonly keyring: KeyringNode;
  /** Recorded in manifests: the KMS key, or `raw-aes:<namespace>/<name>` for a local key. */
  readonly keyId: string;
}

function readLocalKey(file: string): Uint8Array {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (error) {
    throw configError(`encryption.keyFile ${file} cannot be read: ${(error as Error).message}`);
  }
  if (content.length === 32) return new Uint8Array(content);
  const decoded = Buffer.from(content.toString("utf8").trim(), "base64");
  if (decoded.length === 32) return new Uint8Array(decoded);
  throw configError(
    `encryption.keyFile ${file} must hold a 256-bit key: 32 raw bytes or their base64 (openssl rand -base64 32)`,
  );
}

export function dataKeyring(config: Pick<AgentConfig, "encryption" | "region" | "kmsEndpoint">): DataKeyring {
  const encryption = config.encryption;
  if ("kmsKeyId" in encryption) {
    return {
      keyring: new KmsKeyringNode({
        generatorKeyId: encryption.kmsKeyId,
        ...(config.kmsEndpoint ? { clientProvider: getClient(KMS, { endpoint: config.kmsEndpoint }) } : {}),
      }),
      keyId: encryption.kmsKeyId,
    };
  }
  return {
    keyring: new RawAesKeyringNode({
      keyName: encryption.keyName,
      keyNamespace: LOCAL_KEY_NAMESPACE,
      unencryptedMasterKey: readLocalKey(encryption.keyFile),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    }),
    keyId: `raw-aes:${LOCAL_KEY_NAMESPACE}/${encryption.keyName}`,
  };
}

/** What a manifest records of how its stored object was encrypted. */
export function encryptionRecord(keyId: string, context: Record<string, string>): EncryptionRecord {
  return { suite: ENCRYPTION_SUITE, frameLength: FRAME_LENGTH, keyId, context };
}

/**
 * Unsigned committing suite: streams can be decrypted without buffering a signature check. With
 * the plaintext's length known, a caching materials manager reuses its data key.
 */
export function encryptingStream(
  materials: KeyringNode | NodeCachingMaterialsManager,
  context: Record<string, string>,
  plaintextLength?: number,
): Duplex {
  return client.encryptStream(materials, {
    suiteId: AlgorithmSuiteIdentifier[ENCRYPTION_SUITE],
    encryptionContext: context,
    frameLength: FRAME_LENGTH,
    ...(plaintextLength !== undefined ? { plaintextLength } : {}),
  });
}

/**
 * Decrypts and checks that the message was made for `expectedContext`, so an object copied under
 * another backup's key cannot be restored in its place.
 */
export function decryptingStream(keyring: KeyringNode, expectedContext: Record<string, string>): Duplex {
  const stream = client.decryptUnsignedMessageStream(keyring);
  stream.once("MessageHeader", (header: { encryptionContext: Record<string, string> }) => {
    for (const [key, value] of Object.entries(expectedContext)) {
      if (header.encryptionContext[key] !== value) {
        stream.destroy(
          new Error(
            `encryption context ${key}=${header.encryptionContext[key]} does not match ${value}; this object belongs to another backup`,
          ),
        );
        return;
      }
    }
  });
  return stream;
}

/**
 * zstd → encryption → sink, without ever destroying the encryption stream: the Encryption SDK
 * pipes internally without an error callback, so destroying its stream early throws an uncaught
 * "Premature close". On a failure the stream is just left paused; the process ends soon after.
 */
export function encryptInto(source: Readable, encrypt: Duplex, sink: Writable): Promise<void> {
  source.pipe(encrypt);
  return new Promise<void>((resolve, reject) => {
    // KMS refusing a data key fails the upload; unheard, it would end the process.
    encrypt.once("error", reject);
    encrypt.on("data", (chunk: Buffer) => {
      if (sink.destroyed) {
        encrypt.pause();
        return;
      }
      if (!sink.write(chunk)) {
        encrypt.pause();
        sink.once("drain", () => encrypt.resume());
      }
    });
    encrypt.once("end", () => {
      if (!sink.destroyed) sink.end();
    });
    sink.once("finish", resolve);
    sink.once("close", () => {
      if (!sink.writableFinished) reject(new Error("the upload was stopped"));
    });
  });
}

/**
 * Data keys reused for a while: one KMS GenerateDataKey serves every message encrypted under the
 * same encryption context within `maxAgeSeconds` (at most 10,000 messages), instead of one per
 * message. The binlog chunks of one file share their context `{cluster, source, file}`, so a file
 * open an hour costs one data key, not one per chunk; a backup's blocks share `{cluster,
 * backupId}`, and decrypting them asks KMS once per data key, not once per block (AWS Encryption SDK developer guide, "Data
 * key caching"; a cache entry is keyed by the algorithm suite and the encryption context).
 */
export function cachedDataKeys(keyring: KeyringNode, maxAgeSeconds = 3600): NodeCachingMaterialsManager {
  return new NodeCachingMaterialsManager({
    backingMaterials: keyring,
    cache: getLocalCryptographicMaterialsCache(64),
    maxAge: maxAgeSeconds * 1000,
    maxMessagesEncrypted: 10_000,
    partition: "rewind-binlog-chunks",
  });
}

/** One message, in memory: a cached data key applies because the plaintext's length is known. */
export async function encryptBuffer(
  materials: NodeCachingMaterialsManager | KeyringNode,
  plaintext: Buffer,
  context: Record<string, string>,
): Promise<Buffer> {
  const { result } = await client.encrypt(materials, plaintext, {
    suiteId: AlgorithmSuiteIdentifier[ENCRYPTION_SUITE],
    encryptionContext: context,
    frameLength: FRAME_LENGTH,
  });
  // A view, not a copy: a backup's blocks are tens of MiB each.
  return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
}

/** Decrypts one in-memory message and checks that it was made for `expectedContext`. */
export async function decryptBuffer(
  materials: NodeCachingMaterialsManager | KeyringNode,
  ciphertext: Buffer,
  expectedContext: Record<string, string>,
): Promise<Buffer> {
  const { plaintext, messageHeader } = await client.decrypt(materials, ciphertext);
  for (const [key, value] of Object.entries(expectedContext)) {
    if (messageHeader.encryptionContext[key] !== value) {
      throw new Error(
        `encryption context ${key}=${messageHeader.encryptionContext[key]} does not match ${value}; this object belongs to another file`,
      );
    }
  }
  return Buffer.from(plaintext);
}
