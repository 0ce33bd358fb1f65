import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from './hashing.js';

test('HashingStream passes bytes through and hashes them', async () => {
  const h = new HashingStream();
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([Buffer.from('hello '), Buffer.from('world')]),
    h,
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  assert.equal(Buffer.concat(out).toString(), 'hello world');
  assert.equal(h.bytes(), 11);
  assert.equal(h.digest(), 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9');
});

test('HashingStream.digest() before the end is a programming error', () => {
  assert.throws(() => new HashingStream().digest(), /before the stream ended/);
});
