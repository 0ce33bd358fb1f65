import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImageLeases } from './lease.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('leases: shared ones coexist; exclusive waits for them and blocks later ones, in arrival order', async () => {
  const l = new ImageLeases();
  const log: string[] = [];
  const r1 = await l.shared('a');
  const r2 = await l.shared('a');
  const ex = l.exclusive('a').then((r) => (log.push('ex'), r));
  const s3 = l.shared('a').then((r) => (log.push('s3'), r));
  const other = await l.exclusive('b'); // another image is independent
  await tick();
  assert.deepEqual(log, []);
  assert.equal(l.waiting('a'), 2);
  r1();
  r1(); // idempotent: does not release r2's hold
  await tick();
  assert.deepEqual(log, []);
  r2();
  const rex = await ex;
  await tick();
  assert.deepEqual(log, ['ex'], 'a later shared lease waits behind the exclusive one');
  rex();
  (await s3)();
  other();
  assert.equal(l.waiting('a'), 0);
});

test('withExclusive releases when fn throws', async () => {
  const l = new ImageLeases();
  await assert.rejects(
    l.withExclusive('a', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await l.withShared('a', async () => 7), 7);
});
