import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LineDecoder, WIRE_LIMITS } from '../api/protocol.js';
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
  requestLineTimeoutMs: 300,
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

/** Sends one request and collects every response line (or stops after `take` lines). */
function request(req: unknown, take?: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socket);
    const dec = new LineDecoder();
    const lines: unknown[] = [];
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d) => {
      lines.push(...dec.push(d.toString()));
      if (take !== undefined && lines.length >= take) {
        sock.destroy();
        resolve(lines);
      }
    });
    sock.on('end', () => resolve(lines));
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
  const cases: { req: Record<string, unknown>; code: string; msg: RegExp }[] = [
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

test('invalid JSON is answered with bad_request', async () => {
  const lines = await new Promise<unknown[]>((resolve) => {
    const sock = createConnection(socket);
    const dec = new LineDecoder();
    const out: unknown[] = [];
    sock.on('connect', () => sock.write('{not json\n'));
    sock.on('data', (d) => out.push(...dec.push(d.toString())));
    sock.on('end', () => resolve(out));
  });
  assert.equal((lines[0] as { error: { code: string } }).error.code, 'bad_request');
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

interface Exchange {
  lines: unknown[];
  /** The daemon closed the connection (or reset it). */
  closed: boolean;
}

/**
 * Writes raw bytes (no newline added) and collects every reply line until the
 * daemon closes the connection. A write the daemon refused to read (EPIPE,
 * ECONNRESET once it closed) still counts as closed.
 */
function exchange(bytes: Buffer | string, path = socket): Promise<Exchange> {
  return new Promise((resolve) => {
    const sock = createConnection(path);
    const dec = new LineDecoder();
    const lines: unknown[] = [];
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => lines.push(...dec.push(d)));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ lines, closed: true }));
  });
}

const errorCode = (x: Exchange): string | undefined =>
  (x.lines.at(-1) as { error?: { code: string } } | undefined)?.error?.code;
const errorMessage = (x: Exchange): string =>
  (x.lines.at(-1) as { error?: { message: string } } | undefined)?.error?.message ?? '';

async function stillServes(path = socket): Promise<void> {
  const x = await exchange(`${JSON.stringify({ method: 'vm.list', params: {}, version: '1.0+test' })}\n`, path);
  assert.deepEqual((x.lines[0] as { result: unknown }).result, []);
}

test(
  'a request line that is not a well-formed request object gets bad_request; the daemon keeps serving',
  { timeout: 30_000 },
  async () => {
    const ok = { method: 'vm.list', params: {}, version: '1.0+test' };
    const cases: [string, Buffer | string][] = [
      ['null', 'null\n'],
      ['a number', '42\n'],
      ['a string', '"vm.list"\n'],
      ['true', 'true\n'],
      ['an empty array', '[]\n'],
      ['an array of requests', `[${JSON.stringify(ok)}]\n`],
      ['method is a number', `${JSON.stringify({ ...ok, method: 5 })}\n`],
      ['method is missing', `${JSON.stringify({ params: {}, version: '1.0+test' })}\n`],
      ['version is a number', `${JSON.stringify({ ...ok, version: 7 })}\n`],
      ['op_id is an object', `${JSON.stringify({ ...ok, op_id: {} })}\n`],
      ['params is an array', `${JSON.stringify({ ...ok, params: [] })}\n`],
      ['params is null', `${JSON.stringify({ ...ok, params: null })}\n`],
      [
        'invalid UTF-8 in a string',
        Buffer.concat([
          Buffer.from('{"method":"vm.list","params":{},"version":"1.0+test","op_id":"op-'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('"}\n'),
        ]),
      ],
      ['binary garbage', Buffer.from([0x00, 0x01, 0xff, 0x7b, 0x0a])],
    ];
    for (const [name, bytes] of cases) {
      const x = await exchange(bytes);
      assert.equal(errorCode(x), 'bad_request', `${name}: ${JSON.stringify(x.lines)}`);
      assert.ok(x.closed, name);
    }
    await stillServes();
  },
);

test(
  'a request line over 1 MiB gets bad_request and the connection is closed without waiting for a newline',
  { timeout: 30_000 },
  async () => {
    const x = await exchange(`{"method":"vm.list","params":{"x":"${'a'.repeat(WIRE_LIMITS.maxRequestLineBytes)}`);
    assert.equal(errorCode(x), 'bad_request', JSON.stringify(x.lines).slice(0, 300));
    assert.match(errorMessage(x), /longer than 1048576 bytes/);
    assert.ok(x.closed);
    await stillServes();
  },
);

test('a request line of exactly 1 MiB is accepted', async () => {
  const req = JSON.stringify({ method: 'vm.list', params: {}, version: '1.0+test' });
  const x = await exchange(`${req}${' '.repeat(WIRE_LIMITS.maxRequestLineBytes - req.length)}\n`);
  assert.deepEqual(x.lines, [{ result: [], op_id: (x.lines[0] as { op_id: string }).op_id }]);
});

test('a client that never completes its request line is answered and closed', { timeout: 30_000 }, async () => {
  const x = await exchange('{"method":"vm.li', impatientSocket);
  assert.equal(errorCode(x), 'bad_request', JSON.stringify(x.lines));
  assert.match(errorMessage(x), /no complete request line within 0.3 s/);
  assert.ok(x.closed);
  await stillServes(impatientSocket);
});

test('the request-line timeout does not cut an operation in progress', { timeout: 30_000 }, async () => {
  const pending = exchange(
    `${JSON.stringify({ method: 'vm.stats', params: { ref: 'x' }, version: '1.0+test' })}\n`,
    impatientSocket,
  );
  // Several request-line timeouts pass while the operation runs.
  await sleep(1200);
  release({ cpu: 1 });
  const x = await pending;
  assert.deepEqual((x.lines[0] as { result: unknown }).result, { cpu: 1 });
  held = new Promise<unknown>((r) => (release = r));
});

test('an op id a client reuses is refused, not a crash', { timeout: 30_000 }, async () => {
  const req = `${JSON.stringify({ method: 'vm.show', params: { ref: 'x' }, version: '1.0+test', op_id: 'op-reused-1' })}\n`;
  const first = await exchange(req);
  assert.equal(errorCode(first), 'bad_request');
  assert.match(errorMessage(first), /no x/);
  const second = await exchange(req);
  assert.equal(errorCode(second), 'bad_request', JSON.stringify(second.lines));
  assert.match(errorMessage(second), /op id "op-reused-1" is already used/);
  await stillServes();
});
