import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FakeAgent, type FakeAgentOptions } from '../../../test/fakes/agent.js';
import { AgentClient } from '../../agent/client.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import { decodeFilePut } from '../../agent/payloads.js';
import { FrameType } from '../../agent/protocol.js';
import type { GetOutFrame, PutInFrame } from '../../api/file-contract.js';
import type { StreamChannel } from '../../daemon/stream.js';
import { AppError } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import type { OpContext } from '../context.js';
import { putTarget, VmFiles } from './files.js';

function ctx(): OpContext {
  return { opId: 'op-test', signal: new AbortController().signal, progress: () => undefined };
}

/** A channel whose client frames are `input` and whose daemon frames are collected in `out`. */
function channel<In, Out>(input: In[]): { ch: StreamChannel<In, Out>; out: Out[] } {
  const out: Out[] = [];
  return {
    out,
    ch: {
      send: async (f) => {
        out.push(f);
        await new Promise((r) => setImmediate(r)); // a consumer that takes its time
      },
      frames: () => ({
        async *[Symbol.asyncIterator]() {
          yield* input;
        },
      }),
    },
  };
}

async function setup(opts: FakeAgentOptions = {}, vm: Partial<VmRow> = {}) {
  const [host, guest] = duplexPair();
  const agent = new FakeAgent(guest, opts);
  const client = await AgentClient.connect(host, { timeoutMs: 2000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running', ...vm } as VmRow;
  const img = { id: 'img', name: 'bb', dir: '/nonexistent', assetsVersion: 3 } as ImageRow;
  const files = new VmFiles({
    vms: { byName: (n) => (n === row.name ? row : undefined), get: () => undefined, list: () => [row] },
    images: { get: (id) => (id === img.id ? img : undefined) },
    agents: { use: async (_vm, fn) => fn(client) },
  });
  return { files, agent, client };
}

const frames = (data: Buffer, size = 40000): PutInFrame[] => {
  const out: PutInFrame[] = [];
  for (let o = 0; o < data.length; o += size) out.push({ data: data.subarray(o, o + size).toString('base64') });
  return out;
};

test('putTarget: an existing directory or a path ending in "/" gets the name; otherwise the path itself', () => {
  assert.equal(putTarget('/root/f', 'file', 'x'), '/root/f');
  assert.equal(putTarget('/root/f', 'missing', 'x'), '/root/f');
  assert.equal(putTarget('/root', 'other', 'x'), '/root/x');
  assert.equal(putTarget('/tmp/', 'missing', 'x'), '/tmp/x');
});

test('file_put: the client frames become the guest file, root-owned with the mode given; a directory destination gets the name', async () => {
  const s = await setup({ dirs: ['/root'] });
  const data = randomBytes(300_000); // more than one window, several frames
  const r = await s.files.put(
    { ref: 'dev', path: '/root', name: 'blob', mode: 0o750, size: data.length },
    ctx(),
    channel<PutInFrame, never>(frames(data)).ch,
  );
  assert.deepEqual(r, { path: '/root/blob', mode: 0o750, size: data.length });
  const f = s.agent.files.get('/root/blob');
  assert.ok(f && f.data.equals(data), 'the bytes arrived');
  assert.equal(f.mode, 0o750);
  const put = s.agent.received.find((x) => x.type === FrameType.FILE_PUT);
  const h = decodeFilePut(put?.payload as Buffer);
  assert.deepEqual([h.uid, h.gid, h.path], [0, 0, '/root/blob']);
  assert.deepEqual(s.agent.violations, []);

  const plain = await s.files.put(
    { ref: 'dev', path: '/etc/f', name: 'blob', mode: 0o600, size: 3 },
    ctx(),
    channel<PutInFrame, never>(frames(Buffer.from('abc'))).ch,
  );
  assert.equal(plain.path, '/etc/f');
  assert.equal(s.agent.files.get('/etc/f')?.data.toString(), 'abc');
  // Over an existing file (the probe sees a regular file and aborts its get): replaced, same connection.
  const again = await s.files.put(
    { ref: 'dev', path: '/etc/f', name: 'blob', mode: 0o644, size: 2 },
    ctx(),
    channel<PutInFrame, never>(frames(Buffer.from('xy'))).ch,
  );
  assert.equal(again.path, '/etc/f');
  assert.equal(s.agent.files.get('/etc/f')?.data.toString(), 'xy');
  assert.equal(s.client.isOpen, true);
});

test('file_put: a client that sends fewer bytes than announced leaves no guest file', async () => {
  const s = await setup();
  await assert.rejects(
    s.files.put(
      { ref: 'dev', path: '/root/f', name: 'f', mode: 0o644, size: 10 },
      ctx(),
      channel<PutInFrame, never>(frames(Buffer.from('abc'))).ch,
    ),
    /3 of the 10 bytes/,
  );
  assert.equal(s.agent.files.has('/root/f'), false);
});

test('file_get: the guest file as data frames in order, within the agent windows; mode and size in the result', async () => {
  const data = randomBytes(400_000);
  const s = await setup({ files: new Map([['/var/blob', { data, mode: 0o640 }]]) });
  const c = channel<never, GetOutFrame>([]);
  const r = await s.files.get({ ref: 'dev', path: '/var/blob' }, ctx(), c.ch);
  assert.deepEqual(r, { path: '/var/blob', mode: 0o640, size: data.length });
  assert.ok(c.out.length > 1, 'streamed in several frames');
  assert.ok(Buffer.concat(c.out.map((f) => Buffer.from(f.data, 'base64'))).equals(data));
  assert.deepEqual(s.agent.violations, []);
});

test('file_get: a missing file and a directory are clear errors naming the VM and the path; the connection stays', async () => {
  const s = await setup({ dirs: ['/etc'] });
  await assert.rejects(
    s.files.get({ ref: 'dev', path: '/nope' }, ctx(), channel<never, GetOutFrame>([]).ch),
    (e: AppError) => /VM "dev"/.test(e.message) && /\/nope/.test(e.message) && /No such file/.test(e.message),
  );
  await assert.rejects(
    s.files.get({ ref: 'dev', path: '/etc' }, ctx(), channel<never, GetOutFrame>([]).ch),
    (e: AppError) =>
      /VM "dev"/.test(e.message) && /\/etc is not a regular file/.test(e.message) && /sshd/.test(e.hint ?? ''),
  );
  assert.equal(s.client.isOpen, true);
});

test('file_get / file_put: a stopped VM is refused before the agent is asked', async () => {
  const s = await setup({}, { state: 'stopped' });
  await assert.rejects(
    s.files.get({ ref: 'dev', path: '/x' }, ctx(), channel<never, GetOutFrame>([]).ch),
    /VM "dev" is stopped/,
  );
  assert.equal(s.agent.received.filter((f) => f.type === FrameType.FILE_GET).length, 0);
});

test('file_get: a cancelled operation (the client went away) ABORTs the agent session; the connection stays usable', async () => {
  const data = randomBytes(400_000);
  const s = await setup({ files: new Map([['/var/blob', { data, mode: 0o640 }]]) });
  const ac = new AbortController();
  const c = channel<never, GetOutFrame>([]);
  const send = c.ch.send;
  c.ch.send = async (f) => {
    await send(f);
    ac.abort(); // after the first frame
  };
  await assert.rejects(
    s.files.get({ ref: 'dev', path: '/var/blob' }, { ...ctx(), signal: ac.signal }, c.ch),
    (e: AppError) => e.code === 'cancelled',
  );
  assert.ok(s.agent.received.some((f) => f.type === FrameType.ABORT));
  assert.ok(c.out.length < 10, `stopped early (${c.out.length} frames)`);
  assert.equal(s.client.isOpen, true);
  await s.client.health(); // still answers
});
