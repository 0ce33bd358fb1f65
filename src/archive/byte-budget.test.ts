import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../errors.js';
import { ByteBudget } from './byte-budget.js';

async function through(budget: ByteBudget, label: string, chunks: number[]): Promise<number> {
  let got = 0;
  await pipeline(
    Readable.from(chunks.map((n) => Buffer.alloc(n))),
    budget.meter(label),
    async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) got += c.length;
    },
  );
  return got;
}

test('a byte budget is shared across streams and fails the one that crosses it, naming it', async () => {
  const b = new ByteBudget(100, 'the image content', 'raise max_unpacked_size');
  assert.equal(await through(b, 'layer 1', [40, 20]), 60);
  assert.equal(await through(b, 'layer 2', [40]), 40);
  assert.equal(b.used, 100);
  await assert.rejects(through(b, 'layer 3', [1]), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /the image content is larger than 100 bytes \(reading layer 3\)/);
    assert.equal(e.hint, 'raise max_unpacked_size');
    return true;
  });
});
