/**
 * Block writes into the image file, coalesced: consecutive blocks (the
 * allocator hands them out in order) become one positional write.
 */
import type { FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from './geometry.js';

const MAX_PENDING = 8 * 1024 * 1024;

export class BlockSink {
  readonly #fh: FileHandle;
  #buf = Buffer.allocUnsafe(MAX_PENDING);
  #start = -1;
  #len = 0;
  bytesWritten = 0;

  constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  /** Writes `data` (a whole number of blocks, or less for the last one) at block `block`. */
  async write(block: number, data: Uint8Array): Promise<void> {
    const contiguous = this.#start >= 0 && this.#start * BLOCK_SIZE + this.#len === block * BLOCK_SIZE;
    if (!contiguous || this.#len + data.length > MAX_PENDING) await this.flush();
    if (data.length > MAX_PENDING) {
      await this.#put(data, block * BLOCK_SIZE);
      return;
    }
    if (this.#start < 0) this.#start = block;
    this.#buf.set(data, this.#len);
    // A short tail still occupies its whole block in the pending run.
    this.#len += Math.ceil(data.length / BLOCK_SIZE) * BLOCK_SIZE;
    if (data.length % BLOCK_SIZE !== 0)
      this.#buf.fill(0, this.#len - (BLOCK_SIZE - (data.length % BLOCK_SIZE)), this.#len);
  }

  async flush(): Promise<void> {
    if (this.#start >= 0 && this.#len > 0) await this.#put(this.#buf.subarray(0, this.#len), this.#start * BLOCK_SIZE);
    this.#start = -1;
    this.#len = 0;
  }

  /** Writes bytes at a byte offset directly (the superblock at 1024). */
  async writeAt(data: Uint8Array, pos: number): Promise<void> {
    await this.flush();
    await this.#put(data, pos);
  }

  async #put(data: Uint8Array, pos: number): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.#fh.write(data, off, data.length - off, pos + off);
      if (bytesWritten <= 0) throw new Error('short write to the image');
      off += bytesWritten;
    }
    this.bytesWritten += data.length;
  }
}
