import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encodeFrame } from '../api/binframes.js';
import { ApiClient, openFramed, openPty, RemoteError } from '../api/http-client.js';
import { nullLogger } from '../services/context.js';
import { openStore } from '../store/db.js';
import { OperationRepo } from '../store/operations.js';
import { exchange, post, upgrade } from '../../test/helpers/http-wire.js';
import { ApiToken } from './api-token.js';
import { DaemonServer, type FrameSink, type Handlers, type PtyUpgrade } from './server.js';

/* The TCP listener (loopback only here): the bearer token, Origin refusal, the same methods. */

const dir = mkdtempSync(join(tmpdir(), 'srv-tcp-'));
const token = new ApiToken(join(dir, 'api-token'));
let reached = 0;
const handlers = {
  'vm.list': () => ['listed'],
  'daemon.status': () => ({ pid: 1 }),
  'proc.stream': async (_p: unknown, _c: unknown, sink: FrameSink) => {
    reached++;
    await sink.write(encodeFrame({ kind: 'exit', status: { exit_code: 0 } }));
  },
  'proc.pty': (_p: unknown, _c: unknown, up: PtyUpgrade) => {
    reached++;
    up.open({}).end('hi');
    return Promise.resolve();
  },
} as unknown as Handlers;
const server = new DaemonServer(
  join(dir, 's.sock'),
  '1.0+test',
  handlers,
  new OperationRepo(openStore(':memory:')),
  nullLogger,
);
let target: { host: string; port: number };
let secret: string;

before(async () => {
  await server.listen();
  secret = await token.get();
  const at = await server.listenTcp('127.0.0.1', 0, token);
  target = { host: '127.0.0.1', port: at.port };
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const req = { method: 'vm.list', params: {}, version: '1.0+test' };

test('the TCP listener refuses a missing or wrong token (401) and accepts the right one', async () => {
  const cases: { name: string; headers: Record<string, string>; status: number; message?: RegExp }[] = [
    { name: 'no token', headers: {}, status: 401, message: /missing bearer token/ },
    { name: 'wrong token', headers: { authorization: 'Bearer nope' }, status: 401, message: /wrong bearer token/ },
    { name: 'token as Basic', headers: { authorization: `Basic ${secret}` }, status: 401, message: /wrong/ },
    { name: 'the token', headers: { authorization: `Bearer ${secret}` }, status: 200 },
    {
      name: 'the token with an Origin',
      headers: { authorization: `Bearer ${secret}`, origin: 'http://localhost' },
      status: 403,
      message: /Origin/,
    },
  ];
  for (const c of cases) {
    const x = await exchange(target, post(req, c.headers));
    assert.equal(x.status, c.status, `${c.name}: ${x.raw.toString().slice(0, 200)}`);
    if (c.message) {
      const err = (x.lines[0] as { error: { code: string; message: string; hint: string } }).error;
      assert.match(err.message, c.message, c.name);
      if (c.status === 401) assert.match(err.hint, /banger api token/);
      if (c.status === 401) assert.match(x.raw.toString(), /\r\nwww-authenticate: Bearer/i);
    } else assert.deepEqual((x.lines[0] as { result: unknown }).result, ['listed']);
  }
});

test('the TCP listener refuses an upgrade (a stream) without the token before any 101', async () => {
  const x = await exchange(
    target,
    upgrade({ method: 'vm.exec', params: { ref: 'x', argv: ['a'] }, version: '1.0+test' }),
  );
  assert.equal(x.status, 401);
});

test('the TCP listener refuses proc.stream (binary frames) and proc.pty (raw upgrade) without the token', async () => {
  const p = { id: 'p-0123456789ab' };
  const V = '1.0+test';
  for (const method of ['proc.stream', 'proc.pty']) {
    const raw =
      method === 'proc.pty'
        ? post({ method, params: p, version: V }, { connection: 'Upgrade', upgrade: 'banger-pty' })
        : post({ method, params: p, version: V });
    const none = await exchange(target, raw);
    assert.equal(none.status, 401, `${method} without a token`);
    const open = method === 'proc.pty' ? openPty : openFramed;
    await assert.rejects(
      open({ ...target, token: 'wrong' }, V, method, p),
      (e: unknown) => e instanceof RemoteError && e.status === 401 && /wrong bearer token/.test(e.message),
      `${method} with a wrong token`,
    );
    const withOrigin = await exchange(
      target,
      post({ method, params: p, version: V }, { authorization: `Bearer ${secret}`, origin: 'http://x' }),
    );
    assert.equal(withOrigin.status, 403, `${method} with an Origin`);
  }
  assert.equal(reached, 0, 'no handler ran');
  const res = await openFramed({ ...target, token: secret }, V, 'proc.stream', p);
  res.resume();
  const { socket } = await openPty({ ...target, token: secret }, V, 'proc.pty', p);
  socket.resume();
  assert.equal(reached, 2, 'with the token both reach their handler');
  socket.destroy();
  res.destroy();
});

test('the Unix socket needs no token, and refuses an Origin too', async () => {
  const sock = join(dir, 's.sock');
  assert.equal((await exchange(sock, post(req))).status, 200);
  assert.equal((await exchange(sock, post(req, { origin: 'null' }))).status, 403);
});

test('the HTTP client reaches the TCP listener with its token; a rotated token locks the old one out', async () => {
  const client = new ApiClient({ ...target, token: secret }, '1.0+test');
  assert.deepEqual(await client.call('vm.list', {}), ['listed']);
  const rotated = await token.rotate();
  await assert.rejects(client.call('vm.list', {}), (e: unknown) => {
    assert.ok(e instanceof RemoteError);
    assert.equal(e.status, 401);
    return true;
  });
  assert.deepEqual(await new ApiClient({ ...target, token: rotated }, '1.0+test').call('vm.list', {}), ['listed']);
});
