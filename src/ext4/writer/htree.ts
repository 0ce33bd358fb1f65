/**
 * Hash-indexed (dir_index) directories: a dx root in block 0 whose `..`
 * entry hides the index, optionally one level of index nodes, then leaf
 * blocks of entries sorted by their half-MD4 hash.
 */
import { crc32cRaw } from './crc32c.js';
import { dotEntries, packEntries, type DirEntry } from './dirblocks.js';
import { halfMd4 } from './dxhash.js';
import { BLOCK_SIZE } from './geometry.js';

const ROOT_COUNT_AT = 32;
const NODE_COUNT_AT = 8;
/** Entries per block once the 8-byte checksum tail is taken off. */
export const ROOT_LIMIT = (BLOCK_SIZE - ROOT_COUNT_AT) / 8 - 1;
export const NODE_LIMIT = (BLOCK_SIZE - NODE_COUNT_AT) / 8 - 1;
const HASH_HALF_MD4 = 1;

interface DxEntry {
  hash: number;
  block: number;
}

/** Writes count/limit and entries at `countAt` and the tail checksum. */
function putIndex(b: Buffer, countAt: number, limit: number, entries: readonly DxEntry[], inoSeed: number): void {
  if (entries.length > limit) throw new Error('directory index node overflow');
  b.writeUInt16LE(limit, countAt);
  b.writeUInt16LE(entries.length, countAt + 2);
  entries.forEach((e, i) => {
    if (i > 0) b.writeUInt32LE(e.hash, countAt + i * 8);
    b.writeUInt32LE(e.block, countAt + i * 8 + 4);
  });
  const tail = countAt + limit * 8;
  let crc = crc32cRaw(inoSeed, b, 0, countAt + entries.length * 8);
  crc = crc32cRaw(crc, b, tail, tail + 4);
  crc = crc32cRaw(crc, Buffer.alloc(4));
  b.writeUInt32LE(crc, tail + 4);
}

/** All blocks of an indexed directory, in logical order. */
export function htreeDirBlocks(
  self: number,
  parent: number,
  entries: readonly DirEntry[],
  inoSeed: number,
  hashSeed: Uint8Array,
): Buffer[] {
  const hashed = entries.map((e) => ({ e, ...halfMd4(e.name, hashSeed) }));
  hashed.sort((a, b) => a.hash - b.hash || a.minor - b.minor);
  const leaves = packEntries(
    hashed.map((h) => h.e),
    inoSeed,
  );
  // Index keys: each leaf's first hash, with the low bit set when the previous leaf ends on the same hash.
  const keys = leaves.map((l, i) => {
    const h = (hashed[l.first] as { hash: number }).hash;
    const prevLast = i > 0 ? (hashed[l.first - 1] as { hash: number }).hash : -1;
    return (prevLast === h ? h | 1 : h) >>> 0;
  });
  const levels = leaves.length <= ROOT_LIMIT ? 0 : 1;
  const nodeCount = levels === 0 ? 0 : Math.ceil(leaves.length / NODE_LIMIT);
  if (nodeCount > ROOT_LIMIT) throw new Error(`directory of ${entries.length} entries is too large to index`);
  const firstLeaf = 1 + nodeCount;
  const leafEntries: DxEntry[] = keys.map((hash, i) => ({ hash, block: firstLeaf + i }));
  const root = Buffer.alloc(BLOCK_SIZE);
  const [dot, dotdot] = dotEntries(self, parent) as [DirEntry, DirEntry];
  root.writeUInt32LE(dot.ino, 0);
  root.writeUInt16LE(12, 4);
  root.writeUInt8(1, 6);
  root.writeUInt8(2, 7);
  root.write('.', 8);
  root.writeUInt32LE(dotdot.ino, 12);
  root.writeUInt16LE(BLOCK_SIZE - 12, 16);
  root.writeUInt8(2, 18);
  root.writeUInt8(2, 19);
  root.write('..', 20);
  root.writeUInt8(HASH_HALF_MD4, 28);
  root.writeUInt8(8, 29); // info length
  root.writeUInt8(levels, 30);
  const out: Buffer[] = [root];
  if (levels === 0) {
    putIndex(root, ROOT_COUNT_AT, ROOT_LIMIT, leafEntries, inoSeed);
  } else {
    const rootEntries: DxEntry[] = [];
    for (let n = 0; n < nodeCount; n++) {
      const slice = leafEntries.slice(n * NODE_LIMIT, (n + 1) * NODE_LIMIT);
      const node = Buffer.alloc(BLOCK_SIZE);
      node.writeUInt16LE(BLOCK_SIZE, 4); // one empty entry spanning the block
      putIndex(node, NODE_COUNT_AT, NODE_LIMIT, slice, inoSeed);
      out.push(node);
      rootEntries.push({ hash: (slice[0] as DxEntry).hash, block: 1 + n });
    }
    putIndex(root, ROOT_COUNT_AT, ROOT_LIMIT, rootEntries, inoSeed);
  }
  for (const l of leaves) out.push(l.block);
  return out;
}
