import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coalesce } from './coalesce.js';

async function collect(chunks: number[], min: number): Promise<number[]> {
  const src = (async function* () {
    let i = 0;
    for (const n of chunks) yield Buffer.alloc(n, i++);
  })();
  const out: number[] = [];
  for await (const c of coalesce(src, min)) out.push(c.length);
  return out;
}

test('coalesce: small chunks are gathered up to the minimum, the rest goes at the end, bytes in order', async () => {
  const cases: [number[], number, number[]][] = [
    [[], 10, []],
    [[3, 3, 3], 10, [9]],
    [[3, 3, 3, 3], 10, [12]],
    [[512, 5, 507, 512, 5, 507], 1024, [1024, 1024]],
    [[2000], 1024, [2000]],
    [[4, 4, 4, 4, 1], 8, [8, 8, 1]],
  ];
  for (const [chunks, min, want] of cases) assert.deepEqual(await collect(chunks, min), want, JSON.stringify(chunks));
  const src = (async function* () {
    yield Buffer.from('ab');
    yield new Uint8Array([99, 100]);
    yield Buffer.from('e');
  })();
  const got: Buffer[] = [];
  for await (const c of coalesce(src, 3)) got.push(c);
  assert.equal(Buffer.concat(got).toString(), 'abcde');
});
