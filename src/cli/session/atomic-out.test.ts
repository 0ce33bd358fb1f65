import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAtomic } from './atomic-out.js';

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-atomic-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('openAtomic: the target appears only on commit; a symlink there is replaced, never written through', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'victim'), 'untouched');
  symlinkSync(join(d, 'victim'), join(d, 'out.patch'));
  const f = await openAtomic(join(d, 'out.patch'));
  await f.write(Buffer.from('patch'));
  assert.ok(lstatSync(join(d, 'out.patch')).isSymbolicLink(), 'nothing replaced before commit');
  await f.commit();
  await f.abort(); // after commit: nothing
  assert.ok(lstatSync(join(d, 'out.patch')).isFile());
  assert.equal(readFileSync(join(d, 'out.patch'), 'utf8'), 'patch');
  assert.equal(readFileSync(join(d, 'victim'), 'utf8'), 'untouched');
  assert.deepEqual(readdirSync(d).sort(), ['out.patch', 'victim']);
});

test('openAtomic: abort leaves neither the target nor a temporary file', async (t) => {
  const d = tmp(t);
  const f = await openAtomic(join(d, 'out.patch'));
  await f.write(Buffer.from('half'));
  await f.abort();
  assert.deepEqual(readdirSync(d), []);
});
