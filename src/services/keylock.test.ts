import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedLock } from './keylock.js';

test('KeyedLock: one key runs in order, a failure does not block the next; other keys do not wait', async () => {
  const lock = new KeyedLock();
  const seen: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const a1 = lock.run('a', async () => {
    await gate;
    seen.push('a1');
    throw new Error('boom');
  });
  const a2 = lock.run('a', async () => {
    seen.push('a2');
    return 2;
  });
  const b = await lock.run('b', async () => {
    seen.push('b');
    return 'b';
  });
  assert.equal(b, 'b');
  release();
  await assert.rejects(a1, /boom/);
  assert.equal(await a2, 2);
  assert.deepEqual(seen, ['b', 'a1', 'a2']);
});
