/** The block allocator of a new image: one bit per block, next-fit from a cursor. */
import type { Extent } from './extents.js';
import type { Geometry } from './geometry.js';
import { metadataRanges } from './geometry.js';

/** The image has no block or inode left: a bigger image can hold what was refused. */
export class Ext4FullError extends Error {}

export class BlockAllocator {
  readonly #bits: Uint8Array;
  readonly #count: number;
  #cursor = 0;
  #used = 0;

  constructor(geo: Geometry) {
    this.#count = geo.blocksCount;
    this.#bits = new Uint8Array(Math.ceil(geo.blocksCount / 8));
    for (const [start, n] of metadataRanges(geo)) for (let b = start; b < start + n; b++) this.#mark(b);
  }

  get used(): number {
    return this.#used;
  }

  isUsed(b: number): boolean {
    return ((this.#bits[b >>> 3] as number) & (1 << (b & 7))) !== 0;
  }

  #mark(b: number): void {
    if (this.isUsed(b)) return;
    this.#bits[b >>> 3] = (this.#bits[b >>> 3] as number) | (1 << (b & 7));
    this.#used++;
  }

  /** `n` blocks as runs (physical start, length), in allocation order. Throws when the image is full. */
  allocRuns(n: number): Array<{ start: number; len: number }> {
    if (n > this.#count - this.#used) throw new Ext4FullError(`the image is full (${n} more blocks needed)`);
    const runs: Array<{ start: number; len: number }> = [];
    let left = n;
    while (left > 0) {
      while (this.isUsed(this.#cursor)) this.#cursor = (this.#cursor + 1) % this.#count;
      const start = this.#cursor;
      let len = 0;
      while (len < left && start + len < this.#count && !this.isUsed(start + len)) {
        this.#mark(start + len);
        len++;
      }
      this.#cursor = (start + len) % this.#count;
      runs.push({ start, len });
      left -= len;
    }
    return runs;
  }

  /** `n` blocks, one number each. */
  allocBlocks(n: number): number[] {
    const out: number[] = [];
    for (const r of this.allocRuns(n)) for (let i = 0; i < r.len; i++) out.push(r.start + i);
    return out;
  }

  /** The bitmap bytes of blocks [start, start + len), padded with ones to `bytes`. */
  bitmapOf(start: number, len: number, bytes: number): Buffer {
    const out = Buffer.alloc(bytes);
    for (let i = 0; i < bytes * 8; i++) {
      if (i >= len || this.isUsed(start + i)) out[i >>> 3] = (out[i >>> 3] as number) | (1 << (i & 7));
    }
    return out;
  }
}

/** Appends logical blocks [logical, logical + runs) to `extents`, merging with the last one when contiguous. */
export function appendRuns(
  extents: Extent[],
  logical: number,
  runs: ReadonlyArray<{ start: number; len: number }>,
): void {
  let l = logical;
  for (const r of runs) {
    const last = extents[extents.length - 1];
    if (last && last.logical + last.len === l && last.start + last.len === r.start) last.len += r.len;
    else extents.push({ logical: l, len: r.len, start: r.start });
    l += r.len;
  }
}
