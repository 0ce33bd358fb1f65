/**
 * The half-MD4 directory hash of ext4's hash-indexed directories (hash
 * version 1, signed characters as x86 mke2fs declares), from the on-disk
 * format documentation's description of the dx_hack / half_md4 scheme.
 */
const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

const rol = (x: number, s: number): number => ((x << s) | (x >>> (32 - s))) >>> 0;
const F = (x: number, y: number, z: number): number => (z ^ (x & (y ^ z))) >>> 0;
const G = (x: number, y: number, z: number): number => ((x & y) + ((x ^ y) & z)) >>> 0;
const H = (x: number, y: number, z: number): number => (x ^ y ^ z) >>> 0;

/** One half-MD4 transform of the 4-word state over 8 input words. */
function transform(buf: Uint32Array, w: Uint32Array): void {
  let [a, b, c, d] = [buf[0] as number, buf[1] as number, buf[2] as number, buf[3] as number];
  const r = (f: typeof F, a0: number, b0: number, c0: number, d0: number, x: number, s: number): number =>
    rol((a0 + f(b0, c0, d0) + x) >>> 0, s);
  const x = (i: number): number => w[i] as number;
  // Round 1
  a = r(F, a, b, c, d, x(0), 3);
  d = r(F, d, a, b, c, x(1), 7);
  c = r(F, c, d, a, b, x(2), 11);
  b = r(F, b, c, d, a, x(3), 19);
  a = r(F, a, b, c, d, x(4), 3);
  d = r(F, d, a, b, c, x(5), 7);
  c = r(F, c, d, a, b, x(6), 11);
  b = r(F, b, c, d, a, x(7), 19);
  // Round 2
  a = r(G, a, b, c, d, (x(1) + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (x(3) + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (x(5) + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (x(7) + K2) >>> 0, 13);
  a = r(G, a, b, c, d, (x(0) + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (x(2) + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (x(4) + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (x(6) + K2) >>> 0, 13);
  // Round 3
  a = r(H, a, b, c, d, (x(3) + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (x(7) + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (x(2) + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (x(6) + K3) >>> 0, 15);
  a = r(H, a, b, c, d, (x(1) + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (x(5) + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (x(0) + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (x(4) + K3) >>> 0, 15);
  buf[0] = (buf[0] as number) + a;
  buf[1] = (buf[1] as number) + b;
  buf[2] = (buf[2] as number) + c;
  buf[3] = (buf[3] as number) + d;
}

/** Packs up to 4·num name bytes (as signed chars) into num words, padded with the length pattern. */
function toWords(name: Uint8Array, start: number, len: number, num: number): Uint32Array {
  const out = new Uint32Array(num);
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  const n = Math.min(len, num * 4);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const c = name[start + i] as number;
    val = ((c >= 128 ? c - 256 : c) + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[o++] = val;
      val = pad;
    }
  }
  if (o < num) out[o++] = val;
  while (o < num) out[o++] = pad;
  return out;
}

/** The (major, minor) half-MD4 hash of a name under the filesystem's 16-byte hash seed. */
export function halfMd4(name: Uint8Array, seed: Uint8Array): { hash: number; minor: number } {
  const buf = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  const sw = new Uint32Array(4);
  for (let i = 0; i < 4; i++) sw[i] = new DataView(seed.buffer, seed.byteOffset).getUint32(i * 4, true);
  if (sw.some((v) => v !== 0)) buf.set(sw);
  for (let at = 0; at < name.length || (at === 0 && name.length === 0); at += 32) {
    transform(buf, toWords(name, at, name.length - at, 8));
    if (name.length === 0) break;
  }
  let hash = ((buf[1] as number) & ~1) >>> 0;
  if (hash === 0x7fffffff << 1) hash = ((0x7fffffff - 1) << 1) >>> 0;
  return { hash, minor: buf[2] as number };
}
