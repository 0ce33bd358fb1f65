/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) as ext4 uses it:
 * the raw register update, with no inversion on the way in or out; callers
 * pass ~0 as the first seed where the format says so.
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32cRaw(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = seed >>> 0;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return c >>> 0;
}

/** The seed over a little-endian u32 (group numbers, inode numbers, generations). */
export function crc32cU32(seed: number, value: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return crc32cRaw(seed, b);
}

/** The seed over a little-endian u64 (block numbers of xattr blocks). */
export function crc32cU64(seed: number, value: number): number {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(value), true);
  return crc32cRaw(seed, b);
}
