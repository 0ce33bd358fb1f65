import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { ExecInFrame, ExecOutFrame, ExecResult } from '../../api/methods.js';
import { AppError } from '../../errors.js';
import type { DaemonClient } from '../client.js';
import type { StreamOptions } from '../stream-call.js';
import { runAgentSession, type AgentSessionIO } from './agent-exec.js';

/** A daemon client whose vm.exec the test plays: it sees the params and frames, sends output, ends it. */
function fakeClient() {
  const frames: ExecInFrame[] = [];
  let params: unknown;
  let opts!: StreamOptions<ExecOutFrame>;
  let settle!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
  let closed = false;
  const result = new Promise<ExecResult>((resolve, reject) => (settle = { resolve, reject }));
  const client = {
    stream: (_m: string, p: unknown, o: StreamOptions<ExecOutFrame>) => {
      params = p;
      opts = o;
      return {
        send: async (f: ExecInFrame) => {
          frames.push(f);
        },
        end: () => undefined,
        close: () => {
          closed = true;
          settle.reject(new AppError('cancelled', 'cancelled'));
        },
        result,
      };
    },
  } as unknown as DaemonClient;
  return {
    client,
    frames,
    params: () => params,
    output: (f: ExecOutFrame) => opts.onFrame(f),
    finish: (r: ExecResult) => settle.resolve(r),
    fail: (e: unknown) => settle.reject(e),
    closed: () => closed,
  };
}

function io(tty: boolean) {
  const stdin = Object.assign(new PassThrough(), {
    isTTY: tty,
    modes: [] as boolean[],
    setRawMode(this: { modes: boolean[] }, on: boolean) {
      this.modes.push(on);
      return this;
    },
  });
  const stdout = Object.assign(new PassThrough(), { isTTY: tty, rows: 33, columns: 101 });
  const stderr = new PassThrough();
  const signals = new EventEmitter();
  const x = { stdin, stdout, stderr, signals, term: 'xterm-256color' } as unknown as AgentSessionIO;
  return { x, stdin, stdout, stderr, signals };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

test('terminal: raw mode on and restored, TERM and the window size sent, resize forwarded, output written, exit code verbatim', async () => {
  const f = fakeClient();
  const t = io(true);
  const session = runAgentSession(f.client, { ref: 'dev', env: [['A', '1']], tty: true }, t.x);
  assert.deepEqual(f.params(), { ref: 'dev', env: { TERM: 'xterm-256color', A: '1' }, tty: true, rows: 33, cols: 101 });
  assert.deepEqual(t.stdin.modes, [true]);
  t.stdin.write('\x03');
  t.stdout.rows = 40;
  t.stdout.emit('resize');
  await f.output({ stdout: Buffer.from('hi').toString('base64') });
  await tick();
  f.finish({ exit_code: 3, signal: null });
  assert.deepEqual(await session, { code: 3, interrupted: false });
  assert.deepEqual(t.stdin.modes, [true, false]);
  assert.equal(t.stdout.read()?.toString(), 'hi');
  // Ctrl-C is a byte for the guest's terminal, no signal.
  assert.deepEqual(
    f.frames.map((x) => JSON.stringify(x)).sort(),
    [{ resize: { rows: 40, cols: 101 } }, { stdin: Buffer.from('\x03').toString('base64') }].map((x) =>
      JSON.stringify(x),
    ),
  );
});

test('terminal: raw mode is restored when the daemon fails too', async () => {
  const f = fakeClient();
  const t = io(true);
  const session = runAgentSession(f.client, { ref: 'dev', env: [], tty: true }, t.x);
  f.fail(new AppError('precondition', 'VM "dev" is stopped'));
  await assert.rejects(session, /is stopped/);
  assert.deepEqual(t.stdin.modes, [true, false]);
});

test('pipes: stdin in chunks then its end, argv exactly, stderr apart, death by signal N is 128+N', async () => {
  const f = fakeClient();
  const t = io(false);
  const session = runAgentSession(f.client, { ref: 'dev', argv: ['sh', '-c', 'a b'], env: [], tty: false }, t.x);
  assert.deepEqual(f.params(), { ref: 'dev', argv: ['sh', '-c', 'a b'], env: {}, tty: false });
  const big = Buffer.alloc(80 * 1024, 1);
  t.stdin.end(big);
  await f.output({ stderr: Buffer.from('oops').toString('base64') });
  for (let i = 0; i < 100 && !f.frames.some((x) => 'eof' in x); i++) await tick();
  const sent = Buffer.concat(f.frames.flatMap((x) => ('stdin' in x ? [Buffer.from(x.stdin, 'base64')] : [])));
  assert.equal(sent.equals(big), true);
  assert.ok(f.frames.filter((x) => 'stdin' in x).length >= 3, 'in chunks the frame schema takes');
  assert.deepEqual(f.frames.at(-1), { eof: true });
  f.finish({ exit_code: null, signal: 9 });
  assert.deepEqual(await session, { code: 137, interrupted: false });
  assert.equal(t.stderr.read()?.toString(), 'oops');
});

test('pipes: Ctrl-C sends SIGINT to the guest command and the session ends with 130', async () => {
  const f = fakeClient();
  const t = io(false);
  const session = runAgentSession(f.client, { ref: 'dev', argv: ['sleep', '100'], env: [], tty: false }, t.x);
  t.signals.emit('SIGINT');
  await tick();
  assert.deepEqual(f.frames, [{ signal: 'SIGINT' }]);
  f.finish({ exit_code: 130, signal: null });
  assert.deepEqual(await session, { code: 130, interrupted: true });
  assert.equal(t.signals.listenerCount('SIGINT'), 0, 'the handler is gone afterwards');
});
