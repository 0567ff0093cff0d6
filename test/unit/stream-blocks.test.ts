import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type EncryptedDataKey,
  KeyringNode,
  type NodeDecryptionMaterial,
  type NodeEncryptionMaterial,
} from "@aws-crypto/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { StreamBlocks, selectBlocks } from "../../core/stream-blocks.js";
import { XbstreamReader } from "../../core/xbstream.js";
import { BlockEncoder } from "../../host-agent/backup/block-encoder.js";
import { cachedDataKeys, dataKeyring, encryptingStream } from "../../host-agent/encryption.js";
import { blockDecryption } from "../../host-agent/restore/decode.js";
import { startTool } from "../../host-agent/tool.js";
import { scratchDir } from "../support.js";

/** An xbstream payload chunk (core/xbstream.ts's framing; the CRC is not checked here). */
function chunk(file: string, payload: Buffer, offset: number): Buffer {
  const name = Buffer.from(file);
  const header = Buffer.alloc(14 + name.length + 20);
  header.write("XBSTCK01", 0, "latin1");
  header[9] = "P".charCodeAt(0);
  header.writeUInt32LE(name.length, 10);
  name.copy(header, 14);
  header.writeBigUInt64LE(BigInt(payload.length), 14 + name.length);
  header.writeBigUInt64LE(BigInt(offset), 14 + name.length + 8);
  return Buffer.concat([header, payload]);
}

function end(file: string): Buffer {
  const name = Buffer.from(file);
  const header = Buffer.alloc(14 + name.length);
  header.write("XBSTCK01", 0, "latin1");
  header[9] = "E".charCodeAt(0);
  header.writeUInt32LE(name.length, 10);
  name.copy(header, 14);
  return header;
}

/**
 * Two copy threads' worth of interleaving, as mariabackup streams them: ibdata1 beside big.ibd,
 * then small.ibd, then the .frm files, with the redo log (ib_logfile0) copied all along.
 */
function backupStream(): Buffer {
  const parts: Buffer[] = [];
  let redo = 0;
  const redoChunk = () => {
    parts.push(chunk("ib_logfile0", Buffer.alloc(500, redo % 256), redo * 500));
    redo += 1;
  };
  for (let i = 0; i < 20; i++) {
    parts.push(chunk("ibdata1", Buffer.alloc(3000, i), i * 3000));
    parts.push(chunk("db/big.ibd", randomBytes(5000), i * 5000));
    if (i % 3 === 0) redoChunk();
  }
  parts.push(end("ibdata1"));
  for (let i = 20; i < 60; i++) {
    parts.push(chunk("db/big.ibd", randomBytes(5000), i * 5000));
    if (i % 3 === 0) redoChunk();
  }
  parts.push(end("db/big.ibd"));
  for (let i = 0; i < 4; i++) parts.push(chunk("db/small.ibd", Buffer.alloc(2000, 65 + i), i * 2000));
  parts.push(end("db/small.ibd"));
  redoChunk();
  parts.push(end("ib_logfile0"));
  for (const file of ["db/big.frm", "db/small.frm", "xtrabackup_checkpoints"]) {
    parts.push(chunk(file, Buffer.from(`${file}\n`), 0), end(file));
  }
  return Buffer.concat(parts);
}

const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

describe("a backup stored in blocks", () => {
  const scratch = scratchDir("stream-blocks");
  afterAll(() => scratch.remove());
  const keyFile = path.join(scratch.dir, "key");
  writeFileSync(keyFile, randomBytes(32).toString("base64"));
  const { keyring } = dataKeyring({ encryption: { keyFile, keyName: "test" }, region: "us-east-1" });
  const context = { cluster: "orders", backupId: "b1" };

  async function encode(raw: Buffer, blockSize: number) {
    const stored: Buffer[] = [];
    const sink = new PassThrough();
    sink.on("data", (part: Buffer) => stored.push(part));
    const encoder = new BlockEncoder({
      blockSize,
      inFlight: 2,
      startZstd: () => startTool("zstd", ["-3", "-q", "-c", "-"]),
      encrypt: (compressed) => {
        const message = encryptingStream(keyring, context, compressed.length);
        message.end(compressed);
        return message;
      },
      sink,
    });
    // Fed in pieces that cut headers and bodies anywhere.
    const pieces = [];
    for (let at = 0; at < raw.length; at += 777) pieces.push(raw.subarray(at, at + 777));
    await pipeline(Readable.from(pieces), encoder);
    return { stored: Buffer.concat(stored), index: StreamBlocks.parse(encoder.index()) };
  }

  async function decode(stored: Buffer, sizes: readonly number[]): Promise<Buffer> {
    const frames: Buffer[] = [];
    const decrypt = blockDecryption(keyring, context, sizes);
    decrypt.on("data", (part: Buffer) => frames.push(part));
    await pipeline(Readable.from([stored]), decrypt);
    // Concatenated zstd frames decode as one stream with the zstd CLI, as a restore decodes them.
    return execFileSync("zstd", ["-d", "-q", "-c"], { input: Buffer.concat(frames), maxBuffer: 1 << 26 });
  }

  it("cuts at chunk boundaries into blocks that decode back to every file's chunks in order, and indexes each file's blocks", async () => {
    const raw = backupStream();
    const { stored, index } = await encode(raw, 20_000);
    expect(index.rawBytes.length).toBeGreaterThan(5);
    expect(index.rawBytes.reduce((a, b) => a + b, 0)).toBe(raw.length);
    expect(index.storedBytes.reduce((a, b) => a + b, 0)).toBe(stored.length);
    const decoded = await decode(stored, index.storedBytes);
    expect(decoded.length).toBe(raw.length);
    // The same files with the same bytes (the reader checks each file's chunks come in order).
    const files = (stream: Buffer) => {
      const names = ["ibdata1", "db/small.ibd", "ib_logfile0", "xtrabackup_checkpoints"];
      const reader = new XbstreamReader({ capture: names });
      reader.push(stream);
      reader.finish();
      return { paths: [...reader.paths()].sort(), content: names.map((name) => reader.capturedFile(name)) };
    };
    expect(files(decoded)).toEqual(files(raw));
    // The redo log's chunks have blocks of their own: no data file's block holds any.
    const redoBlocks = new Set(index.files.ib_logfile0!.flatMap(([first, last]) => range(first, last)));
    for (const data of ["ibdata1", "db/big.ibd", "db/small.ibd"]) {
      for (const block of index.files[data]!.flatMap(([first, last]) => range(first, last)))
        expect(redoBlocks.has(block)).toBe(false);
    }
    expect(index.files["db/small.frm"]).toHaveLength(1);
  });

  it("a table's blocks alone decode to a stream holding its file and the system's whole", async () => {
    const raw = backupStream();
    const { stored, index } = await encode(raw, 20_000);
    const keep = (file: string) =>
      !file.startsWith("db/") || file.startsWith("db/small") || file.endsWith(".frm");
    const selection = selectBlocks(index, keep);
    expect(selection.storedBytes).toBeLessThan(stored.length / 2);
    const chosen = Buffer.concat(
      selection.ranges.map((range) => stored.subarray(range.offset, range.offset + range.length)),
    );
    const reader = new XbstreamReader({ capture: ["db/small.ibd", "ibdata1"] });
    reader.push(
      await decode(
        chosen,
        selection.ranges.flatMap((range) => range.blocks),
      ),
    );
    reader.finish();
    expect(reader.capturedFile("db/small.ibd")?.length).toBe(8000);
    expect(reader.capturedFile("ibdata1")?.length).toBe(60_000);
    expect(reader.paths()).toContain("xtrabackup_checkpoints");
  });

  it("every block's message takes its data key from the cache: one key request to encrypt a backup, one to decrypt it", async () => {
    // Counts what reaches the keyring (KMS in AWS) through the caching materials managers.
    let wraps = 0;
    let unwraps = 0;
    class Counting extends KeyringNode {
      override async _onEncrypt(material: NodeEncryptionMaterial) {
        wraps += 1;
        return keyring.onEncrypt(material);
      }
      override async _onDecrypt(material: NodeDecryptionMaterial, keys: EncryptedDataKey[]) {
        unwraps += 1;
        return keyring.onDecrypt(material, keys);
      }
    }
    const counting = new Counting();
    const materials = cachedDataKeys(counting);
    const messages: Buffer[] = [];
    for (let block = 0; block < 5; block++) {
      const compressed = randomBytes(300_000);
      const message = encryptingStream(materials, context, compressed.length);
      message.end(compressed);
      const parts: Buffer[] = [];
      for await (const part of message) parts.push(part as Buffer);
      messages.push(Buffer.concat(parts));
    }
    const decrypt = blockDecryption(
      counting,
      context,
      messages.map((message) => message.length),
    );
    decrypt.resume();
    await pipeline(Readable.from([Buffer.concat(messages)]), decrypt);
    expect({ wraps, unwraps }).toEqual({ wraps: 1, unwraps: 1 });
  });

  it("a damaged or cut stored stream fails decoding, never yields a short stream", async () => {
    const { stored, index } = await encode(backupStream(), 20_000);
    const damaged = Buffer.from(stored);
    damaged[index.storedBytes[0]! + 200]! ^= 1;
    await expect(decode(damaged, index.storedBytes)).rejects.toThrow();
    await expect(decode(stored.subarray(0, stored.length - 10), index.storedBytes)).rejects.toThrow(
      /ends inside block/,
    );
  });
});
