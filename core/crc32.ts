import zlib from "node:zlib";

/** CRC-32 (ISO 3309, the zlib polynomial), for hosts whose Node lacks zlib.crc32. */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export type Crc32 = (data: Uint8Array, previous?: number) => number;

export const crc32: Crc32 = (data, previous = 0) => {
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
};

/** zlib's native CRC-32 where this Node has it (22.2 and later), else the table above. */
export const fastCrc32: Crc32 = (zlib as unknown as { crc32?: Crc32 }).crc32 ?? crc32;
