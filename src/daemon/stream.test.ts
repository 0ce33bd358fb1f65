import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ExecInFrame, ExecOutFrame } from '../api/methods.js';
import { LineDecoder } from '../api/protocol.js';
import { upgrade } from '../../test/helpers/http-wire.js';
import type { OpContext } from '../services/context.js';
import { nullLogger } from '../services/context.js';
import { openStore } from '../store/db.js';
import { OperationRepo } from '../store/operations.js';
import { DaemonServer, type Handlers } from './server.js';
import { MAX_QUEUED_FRAMES, type StreamChannel } from './stream.js';

/*
 * The server's streaming methods, through a real Unix socket, with vm.exec
 * served by a handler each test sets.
 */

type Channel = StreamChannel<ExecInFrame, ExecOutFrame>;
let serve: (p: unknown, ctx: OpContext, ch: Channel) => Promise<unknown> = () => Promise.resolve(null);

const dir = mkdtempSync(join(tmpdir(), 'stream-'));
const socket = join(dir, 's.sock');
const handlers = { 'vm.exec': (p: unknown, ctx: OpContext, ch: Channel) => serve(p, ctx, ch) } as unknown as Handlers;
const server = new DaemonServer(socket, '1.0+test', handlers, new OperationRepo(openStore(':memory:')), nullLogger);

before(() => server.listen());
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const REQUEST = { method: 'vm.exec', params: { ref: 'dev', argv: ['cat'] }, version: '1.0+test' };
const line = (v: unknown): string => `${JSON.stringify(v)}\n`;

/** A client connection: what it sent is up to the test; `lines` collects every line of the daemon. */
function connect(): { sock: Socket; lines: unknown[]; closed: Promise<void>; next: (n: number) => Promise<void> } {
  const sock = createConnection(socket);
  const dec = new LineDecoder();
  const lines: unknown[] = [];
  let waiters: (() => void)[] = [];
  /** The response head (the 101), before the frames. */
  let head: Buffer | undefined = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    if (head !== undefined) {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      assert.match(head.subarray(0, end).toString(), /^HTTP\/1\.1 101 /);
      d = head.subarray(end + 4);
      head = undefined;
    }
    lines.push(...dec.push(d));
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  });
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  const next = (n: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fewer than ${n} lines: ${JSON.stringify(lines)}`)), 5000);
      const check = (): void => {
        if (lines.length >= n) {
          clearTimeout(timer);
          resolve();
        } else waiters.push(check);
      };
      check();
    });
  return { sock, lines, closed, next };
}

/** Resolves when `signal` aborts (rejects after 5 s). */
const aborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not aborted within 5 s')), 5000);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

test('a stream method: client frames (also those in the request chunk) reach the handler in order, its frames come back, then the result', async () => {
  serve = async (p, _ctx, ch) => {
    assert.deepEqual(p, { ref: 'dev', argv: ['cat'] });
    const got: ExecInFrame[] = [];
    for await (const f of ch.frames()) {
      got.push(f);
      if ('stdin' in f) await ch.send({ stdout: f.stdin });
    }
    return { exit_code: got.length, signal: null };
  };
  const c = connect();
  const b64 = Buffer.from('hi\n').toString('base64');
  // The request and its first frames in one write.
  c.sock.write(upgrade(REQUEST) + line({ frame: { stdin: b64 } }) + line({ frame: { resize: { rows: 3, cols: 4 } } }));
  c.sock.write(line({ frame: { signal: 'SIGINT' } }) + line({ frame: { eof: true } }) + line({ end: true }));
  await c.closed;
  assert.deepEqual(c.lines[0], { frame: { stdout: b64 } });
  assert.deepEqual((c.lines[1] as { result: unknown }).result, { exit_code: 4, signal: null });
  assert.equal(c.lines.length, 2);
});

for (const [what, bad, message] of [
  ['invalid JSON', '{"frame": \n', /not valid JSON/],
  ['a frame that is not one of the method', line({ frame: { stdin: 42 } }), /invalid frame for vm.exec: frame|stdin/],
  ['a frame with an extra field', line({ frame: { eof: true, more: 1 } }), /invalid frame for vm.exec/],
  ['a line that is neither frame nor end', line({ data: 'x' }), /stream line with the fields data/],
  ['a line after the end', line({ end: true }) + line({ frame: { eof: true } }), /after the end/],
  ['stdin that is not base64', line({ frame: { stdin: '***' } }), /invalid frame for vm.exec/],
] as const) {
  test(`a bad client line (${what}) is answered with bad_request and cancels the handler`, async () => {
    let signal: AbortSignal | undefined;
    serve = (_p, ctx) => {
      signal = ctx.signal;
      return new Promise(() => undefined); // never ends on its own
    };
    const c = connect();
    c.sock.write(upgrade(REQUEST));
    c.sock.write(bad);
    await c.closed;
    const err = (c.lines.at(-1) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, message);
    assert.equal(signal?.aborted, true);
  });
}

test('a client that goes away cancels the handler, and frames() ends', async () => {
  let ended = false;
  let signal: AbortSignal | undefined;
  serve = async (_p, ctx, ch) => {
    signal = ctx.signal;
    for await (const _f of ch.frames()) void _f;
    ended = true;
    await aborted(ctx.signal);
    return { exit_code: 0, signal: null };
  };
  const c = connect();
  c.sock.write(upgrade(REQUEST) + line({ frame: { eof: true } }));
  await new Promise((r) => setTimeout(r, 50));
  c.sock.destroy();
  await aborted((await waitFor(() => signal)) as AbortSignal);
  await waitFor(() => (ended ? true : undefined));
});

async function waitFor<T>(get: () => T | undefined): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met within 5 s');
}

/** Writes frames of 64 KiB until the socket stays full for a second (the daemon stopped reading); how many. */
async function fill(sock: Socket): Promise<number> {
  const pad = ' '.repeat(64 * 1024);
  for (let sent = 1; sent < 1000; sent++) {
    if (sock.write(`{"frame": {"resize": {"rows": ${sent}, "cols": 1}}${pad}}\n`)) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      sock.once('drain', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained) return sent;
  }
  throw new Error('the daemon never stopped reading');
}

test('client → daemon backpressure: while the handler does not pull, the daemon stops reading (bounded queue); all frames arrive in order once it does', async () => {
  let pull!: () => void;
  const pulling = new Promise<void>((r) => (pull = r));
  const got: number[] = [];
  serve = async (_p, _ctx, ch) => {
    await pulling;
    for await (const f of ch.frames()) if ('resize' in f) got.push(f.resize.rows);
    return { exit_code: 0, signal: null };
  };
  const c = connect();
  c.sock.write(upgrade(REQUEST));
  // Frames of 64 KiB of padding each (whitespace between JSON tokens).
  const sent = await fill(c.sock);
  // The kernel's socket buffers hold a few hundred KiB; the daemon holds MAX_QUEUED_FRAMES; nothing grows beyond.
  assert.ok(sent < 200, `${sent} frames of 64 KiB were taken without the handler reading any`);
  pull();
  c.sock.write(line({ end: true }));
  await c.closed;
  assert.deepEqual(
    got,
    Array.from({ length: sent }, (_, i) => i + 1),
  );
  assert.ok(MAX_QUEUED_FRAMES < sent);
});

test('a client that goes away while the daemon is not reading it (the handler is not pulling) still cancels the handler', async () => {
  let signal: AbortSignal | undefined;
  serve = (_p, ctx) => {
    signal = ctx.signal;
    return new Promise(() => undefined); // never pulls, never ends
  };
  const c = connect();
  c.sock.write(upgrade(REQUEST));
  await fill(c.sock);
  c.sock.destroy();
  await aborted((await waitFor(() => signal)) as AbortSignal);
});

test('daemon → client backpressure: send() waits while the client does not read; everything arrives once it does, then the result', async () => {
  let sentCount = 0;
  const chunk = Buffer.alloc(48 * 1024, 7).toString('base64');
  const total = 400; // 25 MiB of frames: far more than any socket buffers
  serve = async (_p, _ctx, ch) => {
    for (let i = 0; i < total; i++) {
      await ch.send({ stdout: chunk });
      sentCount++;
    }
    return { exit_code: 0, signal: null };
  };
  const c = connect();
  c.sock.pause();
  c.sock.write(upgrade(REQUEST));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(sentCount < total, 'send() kept resolving though the client read nothing');
  c.sock.resume();
  await c.closed;
  assert.equal(c.lines.length, total + 1);
  assert.deepEqual((c.lines.at(-1) as { result: unknown }).result, { exit_code: 0, signal: null });
});

test('the params of a stream method are checked before its handler runs', async () => {
  serve = () => Promise.resolve({ exit_code: 0, signal: null });
  const c = connect();
  c.sock.write(upgrade({ ...REQUEST, params: { ref: 'dev', argv: [] } }));
  await c.closed;
  const err = (c.lines.at(-1) as { error: { code: string; message: string } }).error;
  assert.equal(err.code, 'bad_request');
  assert.match(err.message, /invalid params for vm.exec: argv/);
});
