import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { BlockSink } from './sink.js';

/** A FileHandle stand-in recording positional writes; fails the write at `failAt` (1-based) when given. */
function fakeHandle(failAt?: number): { fh: FileHandle; writes: Array<[pos: number, bytes: Buffer]> } {
  const writes: Array<[number, Buffer]> = [];
  const fh = {
    write: async (data: Uint8Array, off: number, len: number, pos: number) => {
      await new Promise((r) => setImmediate(r));
      if (writes.length + 1 === failAt) throw new Error('EIO: disk on fire');
      writes.push([pos, Buffer.from(data.subarray(off, off + len))]);
      return { bytesWritten: len };
    },
  } as unknown as FileHandle;
  return { fh, writes };
}

test('consecutive blocks coalesce into one write; a gap starts another; short tails are zero-padded', async () => {
  const { fh, writes } = fakeHandle();
  const sink = new BlockSink(fh);
  await sink.write(10, Buffer.alloc(4096, 1));
  await sink.write(11, Buffer.alloc(100, 2));
  await sink.write(20, Buffer.alloc(4096, 3));
  await sink.drain();
  assert.deepEqual(
    writes.map(([pos, b]) => [pos, b.length]),
    [
      [10 * 4096, 8192],
      [20 * 4096, 4096],
    ],
  );
  const first = (writes[0] as [number, Buffer])[1];
  assert.equal(first[4096 + 99], 2);
  assert.equal(first[4096 + 100], 0, 'the tail of a short block is zeroed, not stale staging bytes');
});

test('a failed background write surfaces on the next call, not as an unhandled rejection', async () => {
  const { fh } = fakeHandle(1);
  const sink = new BlockSink(fh);
  await sink.write(1, Buffer.alloc(4096, 1));
  await sink.write(5, Buffer.alloc(4096, 1)); // starts the failing write of block 1 in the background
  await assert.rejects(sink.drain(), /EIO: disk on fire/);
  await assert.rejects(sink.write(9, Buffer.alloc(4096)), /EIO: disk on fire/);
});
