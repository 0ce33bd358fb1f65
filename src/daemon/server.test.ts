import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LineDecoder } from '../api/protocol.js';
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

const handlers = {
  'daemon.status': () => ({ pid: 1 }),
  'vm.list': () => [],
  'vm.show': (p: { ref: string }) => {
    throw badRequest(`no ${p.ref}`, 'try another');
  },
  'vm.logs': () => {
    throw new Error('boom');
  },
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

before(async () => {
  cancelled = new Promise((r) => (markCancelled = r));
  await server.listen();
});
after(async () => {
  await server.close();
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
  const [line] = (await request({ method: 'vm.list', params: {}, version: '1.0+test', op_id: 'op-client-1' })) as { result: unknown; op_id: string }[];
  assert.deepEqual(line, { result: [], op_id: 'op-client-1' });
});

test('errors: codes, hints, op ids', async () => {
  const cases: { req: Record<string, unknown>; code: string; msg: RegExp }[] = [
    { req: { method: 'nope', params: {} }, code: 'unknown_method', msg: /unknown method "nope"/ },
    { req: { method: 'vm.list', params: {}, version: 'other' }, code: 'bad_version', msg: /daemon is version 1.0\+test/ },
    { req: { method: 'vm.list', params: { extra: 1 } }, code: 'bad_request', msg: /unknown field "extra"/ },
    { req: { method: 'vm.show', params: {} }, code: 'bad_request', msg: /ref/ },
    { req: { method: 'vm.show', params: { ref: 'x' } }, code: 'bad_request', msg: /no x/ },
    { req: { method: 'vm.logs', params: { ref: 'x' } }, code: 'operation_failed', msg: /internal error: boom/ },
  ];
  for (const c of cases) {
    const lines = (await request({ version: '1.0+test', ...c.req })) as { error: { code: string; message: string; op_id: string; hint?: string } }[];
    const err = lines.at(-1)?.error;
    assert.ok(err, JSON.stringify(lines));
    assert.equal(err.code, c.code);
    assert.match(err.message, c.msg);
    assert.match(err.op_id, /^op-/);
  }
});

test('daemon.status answers a client of another version', async () => {
  const [line] = (await request({ method: 'daemon.status', params: {}, version: 'old' })) as { result: unknown }[];
  assert.deepEqual(line?.result, { pid: 1 });
});

test('progress events stream, and a disconnect cancels the operation', async () => {
  const lines = (await request({ method: 'vm.create', params: {}, version: '1.0+test' }, 1)) as { event: { stage: string } }[];
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
  const err = Object.assign(new Error("ENOSPC: no space left on device, copyfile '/s/images/x/seed' -> '/s/vms/y/work.ext4'"), {
    code: 'ENOSPC', syscall: 'copyfile', path: '/s/images/x/seed', dest: '/s/vms/y/work.ext4',
  });
  const w = toWireError(err, 'op-1', nullLogger);
  assert.equal(w.code, 'operation_failed');
  assert.equal(w.message, 'no space left on device writing /s/vms/y/work.ext4');
  assert.match(w.hint ?? '', /free space on the filesystem holding \/s\/vms\/y\/work\.ext4/);
  const quota = toWireError(Object.assign(new Error('EDQUOT'), { code: 'EDQUOT', path: '/s/tmp/f' }), 'op-2', nullLogger);
  assert.equal(quota.message, 'disk quota exceeded writing /s/tmp/f');
  assert.match(toWireError(Object.assign(new Error('EACCES'), { code: 'EACCES' }), 'op-3', nullLogger).message, /^internal error/);
});
