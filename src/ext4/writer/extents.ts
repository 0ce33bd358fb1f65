/**
 * Extent trees: a file's runs of blocks as the inode's 60-byte root, with
 * leaf and index blocks (each with its checksum tail) when more than four
 * extents are needed.
 */
import { crc32cRaw } from './crc32c.js';
import { BLOCK_SIZE } from './geometry.js';

export interface Extent {
  /** First logical block of the file. */
  logical: number;
  /** Blocks (at most MAX_EXTENT_LEN). */
  len: number;
  /** First physical block. */
  start: number;
}

export const MAX_EXTENT_LEN = 32768;
const HEADER = 12;
const ENTRY = 12;
const ROOT_MAX = 4;
export const BLOCK_MAX = (BLOCK_SIZE - HEADER - 4) / ENTRY;

export interface ExtentTree {
  iblock: Buffer;
  /** Tree blocks to write: where and what. */
  blocks: Array<{ block: number; data: Buffer }>;
}

function header(b: Buffer, entries: number, max: number, depth: number): void {
  b.writeUInt16LE(0xf30a, 0);
  b.writeUInt16LE(entries, 2);
  b.writeUInt16LE(max, 4);
  b.writeUInt16LE(depth, 6);
}

function putLeaf(b: Buffer, at: number, e: Extent): void {
  b.writeUInt32LE(e.logical, at);
  b.writeUInt16LE(e.len, at + 4);
  b.writeUInt16LE(Math.floor(e.start / 2 ** 32), at + 6);
  b.writeUInt32LE(e.start % 2 ** 32, at + 8);
}

function putIndex(b: Buffer, at: number, logical: number, child: number): void {
  b.writeUInt32LE(logical, at);
  b.writeUInt32LE(child % 2 ** 32, at + 4);
  b.writeUInt16LE(Math.floor(child / 2 ** 32), at + 8);
}

/** Splits runs longer than an extent can say into several extents. */
export function splitRuns(runs: readonly Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const r of runs) {
    for (let off = 0; off < r.len; off += MAX_EXTENT_LEN) {
      out.push({ logical: r.logical + off, len: Math.min(MAX_EXTENT_LEN, r.len - off), start: r.start + off });
    }
  }
  return out;
}

/**
 * The tree of `extents` (sorted, non-overlapping, each ≤ MAX_EXTENT_LEN).
 * `alloc(n)` hands out n blocks for tree nodes; `seed` is the inode's checksum seed.
 */
export function buildExtentTree(extents: readonly Extent[], seed: number, alloc: (n: number) => number[]): ExtentTree {
  const iblock = Buffer.alloc(60);
  const blocks: Array<{ block: number; data: Buffer }> = [];
  if (extents.length <= ROOT_MAX) {
    header(iblock, extents.length, ROOT_MAX, 0);
    extents.forEach((e, i) => putLeaf(iblock, HEADER + i * ENTRY, e));
    return { iblock, blocks };
  }
  // Level by level: each level's nodes are indexed by the level above, until four fit in the inode.
  let level: Array<{ logical: number; write: (b: Buffer, at: number) => void }> = extents.map((e) => ({
    logical: e.logical,
    write: (b, at) => putLeaf(b, at, e),
  }));
  let depth = 0;
  while (level.length > ROOT_MAX) {
    const nodes = Math.ceil(level.length / BLOCK_MAX);
    const where = alloc(nodes);
    const next: typeof level = [];
    for (let n = 0; n < nodes; n++) {
      const items = level.slice(n * BLOCK_MAX, (n + 1) * BLOCK_MAX);
      const data = Buffer.alloc(BLOCK_SIZE);
      header(data, items.length, BLOCK_MAX, depth);
      items.forEach((it, i) => it.write(data, HEADER + i * ENTRY));
      const tail = HEADER + BLOCK_MAX * ENTRY;
      data.writeUInt32LE(crc32cRaw(seed, data, 0, tail), tail);
      const block = where[n] as number;
      blocks.push({ block, data });
      const logical = (items[0] as (typeof items)[0]).logical;
      next.push({ logical, write: (b, at) => putIndex(b, at, logical, block) });
    }
    level = next;
    depth++;
  }
  header(iblock, level.length, ROOT_MAX, depth);
  level.forEach((it, i) => it.write(iblock, HEADER + i * ENTRY));
  return { iblock, blocks };
}
