/**
 * A regular file's data, streamed into the image: all-zero blocks become
 * holes, the rest go to blocks the allocator hands out (contiguous as far as
 * it can), recorded as extents on the inode.
 */
import { appendRuns } from './alloc.js';
import type { Extent } from './extents.js';
import { BLOCK_SIZE } from './geometry.js';
import type { InodeState, WriterState } from './writer.js';

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** Reads exactly `size` bytes from `data` (staged through `chunk`) into the file `rec`; throws on any other length. */
export async function streamFileData(
  s: WriterState,
  rec: InodeState,
  chunk: Buffer,
  size: number,
  data: AsyncIterable<Uint8Array> | Uint8Array,
  path: string,
): Promise<void> {
  const extents = rec.extents as Extent[];
  const zero = ZERO_BLOCK;
  let filled = 0;
  let logical = 0;
  let total = 0;
  const emit = async (buf: Buffer): Promise<void> => {
    // Split into runs of non-zero blocks; each run gets contiguous physical blocks when it can.
    const nblocks = Math.ceil(buf.length / BLOCK_SIZE);
    let i = 0;
    while (i < nblocks) {
      const isZero = (k: number): boolean => {
        const s = buf.subarray(k * BLOCK_SIZE, Math.min(buf.length, (k + 1) * BLOCK_SIZE));
        return s.equals(zero.subarray(0, s.length));
      };
      if (isZero(i)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < nblocks && !isZero(j)) j++;
      const runs = s.alloc.allocRuns(j - i);
      appendRuns(extents, logical + i, runs);
      let off = i * BLOCK_SIZE;
      for (const r of runs) {
        const end = Math.min(buf.length, off + r.len * BLOCK_SIZE);
        await s.sink.write(r.start, buf.subarray(off, end));
        off = end;
      }
      rec.sectors += (j - i) * (BLOCK_SIZE / 512);
      i = j;
    }
    logical += nblocks;
  };
  const feed = async (piece: Uint8Array): Promise<void> => {
    let off = 0;
    while (off < piece.length) {
      const n = Math.min(chunk.length - filled, piece.length - off);
      chunk.set(piece.subarray(off, off + n), filled);
      filled += n;
      off += n;
      if (filled === chunk.length) {
        await emit(chunk);
        filled = 0;
      }
    }
  };
  if (data instanceof Uint8Array) {
    total = data.length;
    if (total !== size) throw new Error(`file ${JSON.stringify(path)} has ${total} bytes, not ${size}`);
    await feed(data);
  } else {
    for await (const piece of data) {
      total += piece.length;
      if (total > size) throw new Error(`file ${JSON.stringify(path)} has more than ${size} bytes`);
      await feed(piece);
    }
    if (total !== size) throw new Error(`file ${JSON.stringify(path)} has ${total} bytes, not ${size}`);
  }
  if (filled > 0) await emit(chunk.subarray(0, filled));
}
