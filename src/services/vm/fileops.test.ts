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
