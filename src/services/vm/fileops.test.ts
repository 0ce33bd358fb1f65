import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeAgent } from '../../../test/fakes/agent.js';
import { AgentClient } from '../../agent/client.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import { quietContext } from '../context.js';
import { VmFileOps } from './fileops.js';

test('fs.write then fs.read round-trip a guest file; a missing file is an error naming the VM', async () => {
  const [host, guest] = duplexPair();
  const files = new Map<string, { data: Buffer; mode: number }>();
  new FakeAgent(guest, { files });
  const client = await AgentClient.connect(host, { timeoutMs: 1000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running' } as VmRow;
  const ops = new VmFileOps({
    vms: { byName: () => row, get: () => row, list: () => [row], touch: () => undefined },
    images: { get: () => ({ id: 'img', name: 'bb', assetsVersion: 3 }) as ImageRow },
    agents: { use: async (_vm, fn) => fn(client) },
  });
  const w = await ops.write(
    { ref: 'dev', path: '/tmp/a.txt', data: Buffer.from('hi\n').toString('base64') },
    quietContext(),
  );
  assert.deepEqual(w, { path: '/tmp/a.txt', size: 3, mode: 0o644 });
  const r = await ops.read({ ref: 'dev', path: '/tmp/a.txt' }, quietContext());
  assert.equal(Buffer.from(r.data, 'base64').toString(), 'hi\n');
  await assert.rejects(ops.read({ ref: 'dev', path: '/nope' }, quietContext()), /VM "dev"/);
});

test('fs.list: sorted entries with full paths; missing, not-a-directory and old images are typed errors', async () => {
  const [host, guest] = duplexPair();
  const files = new Map([
    ['/w/b.txt', { data: Buffer.from('bb'), mode: 0o600 }],
    ['/w/a.txt', { data: Buffer.from('a'), mode: 0o644 }],
  ]);
  new FakeAgent(guest, { files, dirs: ['/w', '/w/sub'] });
  const client = await AgentClient.connect(host, { timeoutMs: 1000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running' } as VmRow;
  let assets = 9;
  const ops = new VmFileOps({
    vms: { byName: () => row, get: () => row, list: () => [row], touch: () => undefined },
    images: { get: () => ({ id: 'img', name: 'bb', assetsVersion: assets }) as ImageRow },
    agents: { use: async (_vm, fn) => fn(client) },
  });
  const r = await ops.list({ ref: 'dev', path: '/w' }, quietContext());
  assert.deepEqual(
    r.entries.map((e) => [e.name, e.path, e.type, e.size, e.mode]),
    [
      ['a.txt', '/w/a.txt', 'file', 1, 0o644],
      ['b.txt', '/w/b.txt', 'file', 2, 0o600],
      ['sub', '/w/sub', 'directory', 0, 0o755],
    ],
  );
  assert.equal(r.truncated, false);
  assert.equal(r.entries[0]?.mtime, '1970-01-01T00:00:01.000Z');
  const cut = await ops.list({ ref: 'dev', path: '/w/', max_entries: 1 }, quietContext());
  assert.deepEqual([cut.entries.length, cut.truncated, cut.entries[0]?.path.startsWith('/w/')], [1, true, true]);
  await assert.rejects(ops.list({ ref: 'dev', path: '/nope' }, quietContext()), {
    code: 'not_found',
    message: 'VM "dev": guest path /nope does not exist',
  });
  await assert.rejects(ops.list({ ref: 'dev', path: '/w/a.txt' }, quietContext()), { code: 'bad_request' });
  assets = 8;
  await assert.rejects(ops.list({ ref: 'dev', path: '/w' }, quietContext()), (e: Error & { hint?: string }) => {
    assert.match(e.message, /guest assets v8; listing a directory needs v9/);
    assert.match(e.hint ?? '', /banger image refresh bb/);
    return true;
  });
});
