/**
 * Block writes into the image file, coalesced: consecutive blocks (the
 * allocator hands them out in order) become one positional write. Two
 * staging buffers: one fills while the other is being written.
 */
import type { FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from './geometry.js';

const MAX_PENDING = 8 * 1024 * 1024;

export class BlockSink {
  readonly #fh: FileHandle;
  readonly #bufs = [Buffer.allocUnsafe(MAX_PENDING), Buffer.allocUnsafe(MAX_PENDING)];
  /** The write in flight from each buffer (it must finish before the buffer is reused). */
  readonly #inflight: Array<Promise<void> | undefined> = [undefined, undefined];
  #cur = 0;
  #start = -1;
  #len = 0;
  #error: unknown;
  bytesWritten = 0;

  constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  /** Writes `data` (a whole number of blocks, or less for the last one) at block `block`. */
  async write(block: number, data: Uint8Array): Promise<void> {
    this.#check();
    const contiguous = this.#start >= 0 && this.#start * BLOCK_SIZE + this.#len === block * BLOCK_SIZE;
    if (!contiguous || this.#len + data.length > MAX_PENDING) await this.flush();
    if (data.length > MAX_PENDING) {
      await this.#put(data, block * BLOCK_SIZE);
      return;
    }
    const buf = this.#bufs[this.#cur] as Buffer;
    if (this.#start < 0) this.#start = block;
    buf.set(data, this.#len);
    // A short tail still occupies its whole block in the pending run.
    const end = this.#len + Math.ceil(data.length / BLOCK_SIZE) * BLOCK_SIZE;
    buf.fill(0, this.#len + data.length, end);
    this.#len = end;
  }

  /** Starts writing the pending run, and waits until the other buffer is free to fill. */
  async flush(): Promise<void> {
    this.#check();
    if (this.#start >= 0 && this.#len > 0) {
      const i = this.#cur;
      const p = this.#put((this.#bufs[i] as Buffer).subarray(0, this.#len), this.#start * BLOCK_SIZE);
      // Failures surface on the next call (never as an unhandled rejection).
      this.#inflight[i] = p.catch((e: unknown) => {
        this.#error ??= e;
      });
      this.#cur = 1 - i;
      await this.#inflight[this.#cur];
      this.#inflight[this.#cur] = undefined;
      this.#check();
    }
    this.#start = -1;
    this.#len = 0;
  }

  /** Flushes and waits for every write to land. */
  async drain(): Promise<void> {
    await this.flush();
    await Promise.all(this.#inflight);
    this.#inflight.fill(undefined);
    this.#check();
  }

  /** Writes bytes at a byte offset directly (the superblock at 1024). */
  async writeAt(data: Uint8Array, pos: number): Promise<void> {
    await this.drain();
    await this.#put(data, pos);
  }

  #check(): void {
    if (this.#error !== undefined) throw this.#error;
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
