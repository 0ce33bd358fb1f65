import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WIRE_LIMITS } from '../api/protocol.js';
import { dechunk, exchange as httpExchange, post, type WireRequest } from '../../test/helpers/http-wire.js';
import { createConnection } from 'node:net';
import { badRequest } from '../errors.js';
import type { OpContext } from '../services/context.js';
import { nullLogger } from '../services/context.js';
import { openStore } from '../store/db.js';
import { OperationRepo } from '../store/operations.js';
import { DaemonServer, toWireError, type Handlers } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'srv-'));
const socket = join(dir, 's.sock');
const db = openStore(':memory:');
let cancelled: Promise<void>;
let markCancelled: () => void;
/** vm.stats answers when the test releases it. */
let release: (v: unknown) => void = () => undefined;
let held = new Promise<unknown>((r) => (release = r));

const handlers = {
  'daemon.status': () => ({ pid: 1 }),
  'vm.list': () => [],
  'vm.show': (p: { ref: string }) => {
    throw badRequest(`no ${p.ref}`, 'try another');
  },
  'vm.logs': () => {
    throw new Error('boom');
  },
  'vm.stats': () => held,
  'vm.create': (_p: unknown, ctx: OpContext) => {
    ctx.progress({ stage: 'boot', message: 'booting' });
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        markCancelled();
        reject(new Error('aborted'));
      });
    });
  },
} as unknown as Handlers;

const server = new DaemonServer(socket, '1.0+test', handlers, new OperationRepo(db), nullLogger);
/** The same handlers with a short wait for the request line. */
const impatientSocket = join(dir, 'i.sock');
const impatient = new DaemonServer(impatientSocket, '1.0+test', handlers, new OperationRepo(db), nullLogger, {
  requestTimeoutMs: 300,
});

before(async () => {
  cancelled = new Promise((r) => (markCancelled = r));
  await server.listen();
  await impatient.listen();
});
after(async () => {
  await server.close();
  await impatient.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends one request and collects every response frame (or stops after `take` frames). */
async function request(req: WireRequest, take?: number): Promise<unknown[]> {
  if (take === undefined) return (await httpExchange(socket, post(req))).lines;
  return new Promise((resolve, reject) => {
    const sock = createConnection(socket);
    let raw = '';
    sock.on('connect', () => sock.write(post(req)));
    sock.on('data', (d) => {
      raw += d.toString();
      // Chunked: each frame line sits in its own chunk after the headers.
      const lines = raw
        .split('\r\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as unknown);
      if (lines.length >= take) {
        sock.destroy();
        resolve(lines);
      }
    });
    sock.on('error', reject);
  });
}

test('the socket is 0600', () => {
  assert.equal(statSync(socket).mode & 0o777, 0o600);
});

test('a result line carries the op id', async () => {
  const [line] = (await request({ method: 'vm.list', params: {}, version: '1.0+test', op_id: 'op-client-1' })) as {
    result: unknown;
    op_id: string;
  }[];
  assert.deepEqual(line, { result: [], op_id: 'op-client-1' });
});

test('errors: codes, hints, op ids', async () => {
  const cases: { req: WireRequest; code: string; msg: RegExp }[] = [
    { req: { method: 'nope', params: {} }, code: 'unknown_method', msg: /unknown method "nope"/ },
    {
      req: { method: 'vm.list', params: {}, version: 'other' },
      code: 'bad_version',
      msg: /daemon is version 1.0\+test/,
    },
    { req: { method: 'vm.list', params: { extra: 1 } }, code: 'bad_request', msg: /unknown field "extra"/ },
    { req: { method: 'vm.show', params: {} }, code: 'bad_request', msg: /ref/ },
    { req: { method: 'vm.show', params: { ref: 'x' } }, code: 'bad_request', msg: /no x/ },
    { req: { method: 'vm.logs', params: { ref: 'x' } }, code: 'operation_failed', msg: /internal error: boom/ },
  ];
  for (const c of cases) {
    const lines = (await request({ version: '1.0+test', ...c.req })) as {
      error: { code: string; message: string; op_id: string; hint?: string };
    }[];
    const err = lines.at(-1)?.error;
    assert.ok(err, JSON.stringify(lines));
    assert.equal(err.code, c.code);
    assert.match(err.message, c.msg);
    assert.match(err.op_id, /^op-/);
  }
});

test('a size the schema cannot parse is a bad_request naming the field, with a hint; the handler is not called', async () => {
  for (const [method, params, msg] of [
    ['vm.create', { memory: '2Q' }, 'invalid memory "2Q": not a size'],
    ['vm.set', { ref: 'x', disk_size: -1 }, 'invalid disk_size -1: not a size'],
    ['image.pull', { ref: 'x', size: '5X' }, 'invalid size "5X": not a size'],
  ] as const) {
    const lines = (await request({ method, params, version: '1.0+test' })) as {
      error: { code: string; message: string; hint?: string };
    }[];
    assert.equal(lines.length, 1, `no progress, no handler: ${JSON.stringify(lines)}`);
    const err = lines[0]?.error;
    assert.equal(err?.code, 'bad_request');
    assert.equal(err.message, msg);
    assert.match(err.hint ?? '', /number of MiB or with a unit/);
  }
});

test('daemon.status answers a client of another version', async () => {
  const [line] = (await request({ method: 'daemon.status', params: {}, version: 'old' })) as { result: unknown }[];
  assert.deepEqual(line?.result, { pid: 1 });
});

test('progress events stream, and a disconnect cancels the operation', async () => {
  const lines = (await request({ method: 'vm.create', params: {}, version: '1.0+test' }, 1)) as {
    event: { stage: string };
  }[];
  assert.equal(lines[0]?.event.stage, 'boot');
  await cancelled;
});

test('a body that is not JSON is answered with bad_request (400)', async () => {
  const x = await httpExchange(socket, post({ method: 'vm.list', version: '1.0+test' }, {}, '{not json'));
  assert.equal(x.status, 400);
  assert.equal((x.lines[0] as { error: { code: string } }).error.code, 'bad_request');
});

test('a full disk is an error the user can act on, naming the path, never a bug', () => {
  const err = Object.assign(
    new Error("ENOSPC: no space left on device, copyfile '/s/images/x/seed' -> '/s/vms/y/work.ext4'"),
    {
      code: 'ENOSPC',
      syscall: 'copyfile',
      path: '/s/images/x/seed',
      dest: '/s/vms/y/work.ext4',
    },
  );
  const w = toWireError(err, 'op-1', nullLogger);
  assert.equal(w.code, 'operation_failed');
  assert.equal(w.message, 'no space left on device writing /s/vms/y/work.ext4');
  assert.match(w.hint ?? '', /free space on the filesystem holding \/s\/vms\/y\/work\.ext4/);
  const quota = toWireError(
    Object.assign(new Error('EDQUOT'), { code: 'EDQUOT', path: '/s/tmp/f' }),
    'op-2',
    nullLogger,
  );
  assert.equal(quota.message, 'disk quota exceeded writing /s/tmp/f');
  assert.match(
    toWireError(Object.assign(new Error('EACCES'), { code: 'EACCES' }), 'op-3', nullLogger).message,
    /^internal error/,
  );
});

type Exchange = Awaited<ReturnType<typeof httpExchange>>;
const exchange = (bytes: Buffer | string | (Buffer | string)[], path = socket): Promise<Exchange> =>
  httpExchange(path, bytes);

const errorCode = (x: Exchange): string | undefined =>
  (x.lines.at(-1) as { error?: { code: string } } | undefined)?.error?.code;
const errorMessage = (x: Exchange): string =>
  (x.lines.at(-1) as { error?: { message: string } } | undefined)?.error?.message ?? '';

const ok = { method: 'vm.list', params: {}, version: '1.0+test' };

async function stillServes(path = socket): Promise<void> {
  const x = await exchange(post(ok), path);
  assert.equal(x.status, 200);
  assert.deepEqual((x.lines[0] as { result: unknown }).result, []);
}

test('outcomes map to HTTP statuses; every error carries code, message, hint and op id', async () => {
  const cases: { name: string; bytes: Buffer | string; status: number; code: string; msg: RegExp }[] = [
    { name: 'a result', bytes: post(ok), status: 200, code: '', msg: /^$/ },
    {
      name: 'no Host header (a Unix-socket client has none to send)',
      bytes: 'POST /v1/vm.list HTTP/1.1\r\nbanger-version: 1.0+test\r\ncontent-length: 0\r\n\r\n',
      status: 200,
      code: '',
      msg: /^$/,
    },
    {
      name: 'unknown method',
      bytes: post({ ...ok, method: 'nope' }),
      status: 404,
      code: 'unknown_method',
      msg: /"nope"/,
    },
    { name: 'other version', bytes: post({ ...ok, version: 'x' }), status: 409, code: 'bad_version', msg: /version/ },
    { name: 'no version', bytes: post({ method: 'vm.list' }), status: 409, code: 'bad_version', msg: /version/ },
    {
      name: 'bad params',
      bytes: post({ ...ok, params: { extra: 1 } }),
      status: 400,
      code: 'bad_request',
      msg: /extra/,
    },
    { name: 'params null', bytes: post({ ...ok, params: null }), status: 400, code: 'bad_request', msg: /params/ },
    { name: 'params an array', bytes: post({ ...ok, params: [] }), status: 400, code: 'bad_request', msg: /params/ },
    {
      name: 'a handler bug',
      bytes: post({ method: 'vm.logs', params: { ref: 'x' }, version: '1.0+test' }),
      status: 500,
      code: 'operation_failed',
      msg: /internal error: boom/,
    },
    {
      name: 'GET',
      bytes: 'GET /v1/vm.list HTTP/1.1\r\nhost: x\r\n\r\n',
      status: 405,
      code: 'bad_request',
      msg: /GET is not allowed/,
    },
    {
      name: 'another path',
      bytes: 'POST /v2/vm.list HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n',
      status: 404,
      code: 'bad_request',
      msg: /no such path/,
    },
    {
      name: 'not HTTP',
      bytes: '{"method":"vm.list"}\n',
      status: 400,
      code: 'bad_request',
      msg: /not a well-formed HTTP/,
    },
    {
      name: 'binary garbage',
      bytes: Buffer.from([0x00, 0x01, 0xff, 0x7b, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a]),
      status: 400,
      code: 'bad_request',
      msg: /HTTP/,
    },
    {
      name: 'a stream method without upgrade',
      bytes: post({ method: 'vm.exec', params: { ref: 'x', argv: ['a'] }, version: '1.0+test' }),
      status: 400,
      code: 'bad_request',
      msg: /vm.exec streams/,
    },
    {
      name: 'an Origin header',
      bytes: post(ok, { origin: 'https://example.com' }),
      status: 403,
      code: 'bad_request',
      msg: /Origin/,
    },
    {
      name: 'a body that is not UTF-8',
      bytes: post(ok, {}, Buffer.from([0x22, 0xff, 0xfe, 0x22])),
      status: 400,
      code: 'bad_request',
      msg: /UTF-8/,
    },
  ];
  for (const c of cases) {
    const x = await exchange(c.bytes);
    assert.equal(x.status, c.status, `${c.name}: ${x.raw.toString().slice(0, 300)}`);
    assert.ok(x.closed, c.name);
    if (c.code === '') continue;
    const err = (x.lines.at(-1) as { error?: { code: string; message: string; op_id: string } }).error;
    assert.equal(err?.code, c.code, c.name);
    assert.match(err.message, c.msg, c.name);
    assert.match(err.op_id, /^op-/, c.name);
  }
  await stillServes();
});

test(
  'a request body over 1 MiB gets 413 bad_request, declared or chunked, without reading it all',
  { timeout: 30_000 },
  async () => {
    const big = `{"x":"${'a'.repeat(WIRE_LIMITS.maxRequestBytes)}"}`;
    const declared = await exchange(post(ok, {}, big));
    assert.equal(declared.status, 413);
    assert.equal(errorCode(declared), 'bad_request');
    assert.match(errorMessage(declared), /longer than 1048576 bytes/);
    const head =
      'POST /v1/vm.list HTTP/1.1\r\nhost: x\r\nbanger-version: 1.0+test\r\ntransfer-encoding: chunked\r\n\r\n';
    const chunk = (n: number): string => `${n.toString(16)}\r\n${'a'.repeat(n)}\r\n`;
    // No end chunk: the daemon must stop at the limit, not wait for the end of the body.
    const chunked = await exchange([head, ...Array.from({ length: 20 }, () => chunk(64 * 1024))]);
    assert.equal(chunked.status, 413, chunked.raw.toString().slice(0, 200));
    assert.ok(chunked.closed);
    await stillServes();
  },
);

test('a request body of exactly 1 MiB is accepted', async () => {
  const body = JSON.stringify({});
  const x = await exchange(post(ok, {}, `${body}${' '.repeat(WIRE_LIMITS.maxRequestBytes - body.length)}`));
  assert.equal(x.status, 200);
  assert.deepEqual(x.lines, [{ result: [], op_id: (x.lines[0] as { op_id: string }).op_id }]);
});

test('a client that never completes its request is answered (408) and closed', { timeout: 30_000 }, async () => {
  for (const partial of ['POST /v1/vm.li', post(ok).subarray(0, post(ok).length - 1)]) {
    const x = await exchange(partial, impatientSocket);
    assert.equal(x.status, 408, x.raw.toString());
    assert.equal(errorCode(x), 'bad_request', JSON.stringify(x.lines));
    assert.match(errorMessage(x), /no complete request within 0.3 s/);
    assert.ok(x.closed);
  }
  await stillServes(impatientSocket);
});

test('the request timeout does not cut an operation in progress', { timeout: 30_000 }, async () => {
  const pending = exchange(post({ method: 'vm.stats', params: { ref: 'x' }, version: '1.0+test' }), impatientSocket);
  // Several request timeouts pass while the operation runs.
  await sleep(1200);
  release({ cpu: 1 });
  const x = await pending;
  assert.deepEqual((x.lines[0] as { result: unknown }).result, { cpu: 1 });
  held = new Promise<unknown>((r) => (release = r));
});

test('an op id a client reuses is refused, not a crash', { timeout: 30_000 }, async () => {
  const req = post({ method: 'vm.show', params: { ref: 'x' }, version: '1.0+test', op_id: 'op-reused-1' });
  const first = await exchange(req);
  assert.equal(errorCode(first), 'bad_request');
  assert.match(errorMessage(first), /no x/);
  const second = await exchange(req);
  assert.equal(errorCode(second), 'bad_request', JSON.stringify(second.lines));
  assert.match(errorMessage(second), /op id "op-reused-1" is already used/);
  await stillServes();
});

test('GET /v1/openapi.json serves the OpenAPI document', async () => {
  const x = await exchange('GET /v1/openapi.json HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.equal(x.status, 200);
  const body = x.raw.subarray(x.raw.indexOf('\r\n\r\n') + 4);
  const doc = JSON.parse((x.headers['transfer-encoding'] === 'chunked' ? dechunk(body) : body)?.toString() ?? '') as {
    openapi: string;
    paths: Record<string, unknown>;
  };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/vm.list']);
});
