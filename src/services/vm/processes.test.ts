import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FakeAgent, type FakeAgentOptions, type FakeExecIO } from '../../../test/fakes/agent.js';
import { AgentClient } from '../../agent/client.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import type { ImageRow } from '../../store/images.js';
import type { VmRow } from '../../store/vms.js';
import { nullLogger, type OpContext } from '../context.js';
import { VmProcesses } from './processes.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function ctx(): OpContext & { abort(): void } {
  const ac = new AbortController();
  return { opId: 'op-test', signal: ac.signal, progress: () => undefined, abort: () => ac.abort() };
}

async function setup(opts: FakeAgentOptions, image: Partial<ImageRow> = {}, bufferBytes?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'procs-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'manifest.json'), '{}');
  const [host, guest] = duplexPair();
  const agent = new FakeAgent(guest, opts);
  const client = await AgentClient.connect(host, { timeoutMs: 1000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running' } as VmRow;
  const img = { id: 'img', name: 'bb', dir, assetsVersion: 3, ...image } as ImageRow;
  const procs = new VmProcesses({
    vms: {
      byName: (n) => (n === row.name ? row : undefined),
      get: (id) => (id === row.id ? row : undefined),
      list: () => [row],
      touch: () => undefined,
    },
    images: { get: (id) => (id === img.id ? img : undefined) },
    agents: { use: async (_vm, fn) => fn(client) },
    log: nullLogger,
    ...(bufferBytes === undefined ? {} : { bufferBytes }),
  });
  return { procs, agent };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const text = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString();

test('proc: output is kept per stream with offsets; a reader from any offset gets the rest; wait reports exit 3', async () => {
  let io: FakeExecIO | undefined;
  const { procs } = await setup({
    command: (x) => {
      io = x;
      x.stdout('hello ');
      x.stderr('warn\n');
    },
  });
  const p = await procs.start({ ref: 'dev', argv: ['sh', '-c', 'x'] }, ctx());
  assert.equal(p.state, 'running');
  const r1 = await procs.read({ id: p.id, stdout_offset: 0, stderr_offset: 0, wait_ms: 1000 }, ctx());
  // Output may arrive in pieces: read until both streams have what was sent.
  let out = text(r1.stdout?.data);
  let err = text(r1.stderr?.data);
  for (let i = 0; i < 20 && (out !== 'hello ' || err !== 'warn\n'); i++) {
    const r = await procs.read({ id: p.id, stdout_offset: out.length, stderr_offset: err.length, wait_ms: 200 }, ctx());
    out += text(r.stdout?.data);
    err += text(r.stderr?.data);
  }
  assert.deepEqual([out, err], ['hello ', 'warn\n']);
  io?.stdout('world\n');
  io?.exit({ kind: 'exited', code: 3 });
  const st = await procs.wait({ id: p.id }, ctx());
  assert.deepEqual([st.state, st.exit_code, st.signal, st.timed_out], ['exited', 3, null, false]);
  const all = await procs.read({ id: p.id, stdout_offset: 0 }, ctx());
  assert.equal(text(all.stdout?.data), 'hello world\n');
  assert.equal(all.stdout?.next, 12);
  const tail = await procs.read({ id: p.id, stdout_offset: 6, streams: ['stdout'] }, ctx());
  assert.deepEqual([text(tail.stdout?.data), tail.stderr], ['world\n', undefined]);
  assert.deepEqual(
    procs.list('dev').map((v) => [v.id, v.state, v.stdout_bytes]),
    [[p.id, 'exited', 12]],
  );
});

test('proc: attaching from an evicted offset says so and starts at the oldest kept byte', async () => {
  let io: FakeExecIO | undefined;
  const { procs } = await setup({ command: (x) => void (io = x) }, {}, 4);
  const p = await procs.start({ ref: 'dev', argv: ['x'] }, ctx());
  io?.stdout('abcdefgh');
  io?.exit({ kind: 'exited', code: 0 });
  await procs.wait({ id: p.id }, ctx());
  const r = await procs.read({ id: p.id, stdout_offset: 0 }, ctx());
  assert.deepEqual([r.stdout?.offset, text(r.stdout?.data), r.stdout?.evicted, r.stdout?.lost], [4, 'efgh', true, 4]);
});

test('proc: a timeout kills the process group and says timed_out', async () => {
  let aborted = false;
  const { procs } = await setup({ command: (x) => x.onAbort(() => (aborted = true)) });
  const p = await procs.start({ ref: 'dev', argv: ['sleep', '100'], timeout_ms: 50 }, ctx());
  const st = await procs.wait({ id: p.id }, ctx());
  assert.equal(aborted, true);
  assert.deepEqual([st.timed_out, st.signal, st.exit_code], [true, 9, null]);
});

test('proc.exec: streams stay apart; stdin arrives; a client that goes away kills the command', async () => {
  const { procs } = await setup({
    command: (x) => {
      if (x.request.argv[0] === 'cat') {
        const got: Buffer[] = [];
        x.onStdin((d) => {
          if (d) got.push(d);
          else {
            x.stdout(Buffer.concat(got));
            x.stderr('E');
            x.exit({ kind: 'exited', code: 0 });
          }
        });
      }
    },
  });
  const r = await procs.exec({ ref: 'dev', argv: ['cat'], stdin: b64('in!') }, ctx());
  assert.deepEqual([text(r.stdout), text(r.stderr), r.exit_code], ['in!', 'E', 0]);
  assert.deepEqual(procs.list(), [], 'a one-shot exec is not kept');
  const c = ctx();
  const pending = procs.exec({ ref: 'dev', argv: ['sleep'] }, c);
  await new Promise((res) => setTimeout(res, 50));
  c.abort();
  await assert.rejects(pending, /cancelled/);
});

test('proc.write: data and end of input reach an open stdin; signal reaches the command', async () => {
  const got: string[] = [];
  const signals: number[] = [];
  let io: FakeExecIO | undefined;
  const { procs } = await setup({
    command: (x) => {
      io = x;
      x.onStdin((d) => got.push(d === null ? 'EOF' : d.toString()));
      x.onSignal((n) => signals.push(n));
    },
  });
  const p = await procs.start({ ref: 'dev', argv: ['cat'], open_stdin: true }, ctx());
  await procs.write({ id: p.id, data: b64('abc') });
  await procs.write({ id: p.id, eof: true });
  procs.signal({ id: p.id, signal: 'SIGTERM' });
  for (let i = 0; i < 50 && (got.length < 2 || signals.length < 1); i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, ['abc', 'EOF']);
  assert.deepEqual(signals, [15]);
  io?.exit({ kind: 'signaled', signal: 15 });
  const st = await procs.wait({ id: p.id }, ctx());
  assert.equal(st.signal, 15);
  await assert.rejects(procs.write({ id: p.id, data: b64('x') }), /has ended/);
});

test('proc: an image without the agent is refused naming image refresh; an unknown id is not_found', async () => {
  const { procs } = await setup({}, { assetsVersion: 2 });
  await assert.rejects(procs.start({ ref: 'dev', argv: ['x'] }, ctx()), (e: Error & { hint?: string }) =>
    /image refresh bb/.test(e.hint ?? ''),
  );
  assert.throws(() => procs.get('p-000000000000'), /no process p-000000000000/);
});

test('proc.start whose client went away while it started kills the command (nobody has its id)', async () => {
  const c = ctx();
  let aborted = false;
  const { procs } = await setup({
    command: (x) => {
      x.onAbort(() => (aborted = true));
      c.abort();
    },
  });
  await assert.rejects(procs.start({ ref: 'dev', argv: ['sleep'] }, c), /cancelled/);
  for (let i = 0; i < 500 && !aborted; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(aborted, true);
});
