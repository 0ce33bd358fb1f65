/*
 * The output of one daemon-side guest process, per stream: a bounded buffer
 * addressed by byte offsets since the process started. When it holds more
 * than its limit the oldest bytes go; a reader asking for an offset that was
 * evicted is told so and gets what is kept, from the oldest kept byte.
 */

/** What a process keeps of each stream by default. */
export const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;

/** One read of a stream: `data` starts at `offset` and ends at `next` (the offset to ask for next). */
export interface BufferRead {
  offset: number;
  data: Buffer;
  next: number;
  /** The asked-for offset was evicted: `offset` is the oldest kept byte, `lost` bytes were skipped. */
  evicted: boolean;
  lost: number;
}

export class OutputBuffer {
  private chunks: Buffer[] = [];
  /** Offset of the first byte of chunks[0]. */
  private start = 0;
  /** Total bytes ever written (the offset of the next byte). */
  private end = 0;

  constructor(readonly limit = DEFAULT_BUFFER_BYTES) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`buffer limit ${limit} is not a positive integer`);
  }

  /** The offset of the oldest byte still kept. */
  get oldest(): number {
    return this.start;
  }

  /** The offset the next written byte gets (bytes written so far). */
  get total(): number {
    return this.end;
  }

  write(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(Buffer.from(data));
    this.end += data.length;
    let over = this.end - this.start - this.limit;
    while (over > 0) {
      const first = this.chunks[0] as Buffer;
      if (first.length <= over) {
        this.chunks.shift();
        this.start += first.length;
        over -= first.length;
      } else {
        this.chunks[0] = first.subarray(over);
        this.start += over;
        over = 0;
      }
    }
  }

  /**
   * Up to `max` bytes from `from` (a negative or absent offset reads from the oldest kept byte;
   * one past the end reads nothing and says where the end is).
   */
  read(from: number, max = Number.POSITIVE_INFINITY): BufferRead {
    if (!Number.isInteger(from) || from < 0) from = this.start;
    if (from > this.end) from = this.end;
    const evicted = from < this.start;
    const lost = evicted ? this.start - from : 0;
    const at = Math.max(from, this.start);
    const want = Math.max(0, Math.min(this.end - at, max));
    const out: Buffer[] = [];
    let pos = this.start;
    let need = want;
    for (const c of this.chunks) {
      if (need === 0) break;
      const cEnd = pos + c.length;
      if (cEnd > at) {
        const s = Math.max(0, at - pos);
        const piece = c.subarray(s, Math.min(c.length, s + need));
        out.push(piece);
        need -= piece.length;
      }
      pos = cEnd;
    }
    return { offset: at, data: Buffer.concat(out), next: at + want, evicted, lost };
  }
}
