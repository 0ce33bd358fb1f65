import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeAgent, type FakeExecIO } from '../../test/fakes/agent.js';
import { AgentClient } from '../agent/client.js';
import { duplexPair } from '../agent/duplex-pair.js';
import { BINARY_FRAMES_CONTENT_TYPE, FrameDecoder, type BinFrame } from '../api/binframes.js';
import { callMethod, openFramed, openPty, RemoteError } from '../api/http-client.js';
import { HEADER_PROC_ID } from '../api/protocol.js';
import { nullLogger } from '../services/context.js';
import { VmProcesses } from '../services/vm/processes.js';
import { openStore } from '../store/db.js';
import type { ImageRow } from '../store/images.js';
import { OperationRepo } from '../store/operations.js';
import type { VmRow } from '../store/vms.js';
import { procRoutes } from './routes/proc.js';
import { DaemonServer, type Handlers } from './server.js';

/*
 * proc.stream (binary frames) and proc.pty (raw Upgrade) through the daemon's HTTP server, the
 * proc.* routes and a fake agent: offsets, eviction, live output, detach on disconnect, terminal bytes.
 */

const dir = mkdtempSync(join(tmpdir(), 'srv-proc-'));
const socketPath = join(dir, 's.sock');
const V = '1.0+test';
const ep = { socketPath };
let aborts = 0;
const resizes: string[] = [];
/** Commands still running, by argv[0] (the fake guest's programs below). */
const live = new Map<string, FakeExecIO>();

/** The fake guest: `burst N` prints N bytes then exits 0; `follow` waits for the test; `echo` (a terminal) echoes upper-cased until "q". */
function guest(io: FakeExecIO): void {
  const [cmd, arg] = io.request.argv;
  io.onAbort(() => {
    aborts++;
    io.exit({ kind: 'signaled', signal: 9 });
  });
  if (cmd === 'burst') {
    io.stdout(Buffer.alloc(Number(arg), 'a'));
    io.stderr('e');
    io.exit({ kind: 'exited', code: 0 });
  } else if (cmd === 'follow') live.set('follow', io);
  else if (cmd === 'echo') {
    live.set('echo', io);
    io.stdout(`tty=${io.request.pty} ${io.request.cols}x${io.request.rows}\n`);
    io.onResize((r, c) => resizes.push(`${c}x${r}`));
    io.onStdin((d) => {
      if (d === null) return;
      if (d.toString().includes('q')) return io.exit({ kind: 'exited', code: 7 });
      io.stdout(d.toString().toUpperCase());
    });
  }
}

let server: DaemonServer;
before(async () => {
  writeFileSync(join(dir, 'manifest.json'), '{}');
  const [host, guestEnd] = duplexPair();
  new FakeAgent(guestEnd, { command: guest });
  const client = await AgentClient.connect(host, { timeoutMs: 2000 });
  const row = { id: 'a1b2c3d4e5f6', name: 'dev', imageId: 'img', state: 'running', updatedAt: '' } as VmRow;
  const procs = new VmProcesses({
    vms: { byName: () => row, get: () => row, list: () => [row], touch: () => undefined },
    images: { get: () => ({ id: 'img', name: 'bb', dir, assetsVersion: 3 }) as ImageRow },
    agents: { use: async (_vm, fn) => fn(client) },
    log: nullLogger,
    bufferBytes: 1000,
  });
  const handlers = { 'daemon.status': () => ({}), ...procRoutes(procs) } as unknown as Handlers;
  server = new DaemonServer(socketPath, V, handlers, new OperationRepo(openStore(':memory:')), nullLogger);
  await server.listen();
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const start = async (argv: string[]): Promise<string> =>
  ((await callMethod(ep, V, 'proc.start', { ref: 'dev', argv, open_stdin: true })) as { id: string }).id;

/** All frames of a proc.stream response, read in whatever chunks the socket gives. */
async function frames(params: Record<string, unknown>): Promise<BinFrame[]> {
  const res = await openFramed(ep, V, 'proc.stream', params);
  assert.equal(res.headers['content-type'], BINARY_FRAMES_CONTENT_TYPE);
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  const dec = new FrameDecoder();
  const out: BinFrame[] = [];
  for await (const c of res as AsyncIterable<Buffer>) out.push(...dec.push(c));
  assert.equal(dec.pending, 0, 'the body ends on a frame boundary');
  return out;
}

const brief = (f: BinFrame): unknown =>
  f.kind === 'data'
    ? [f.stream, f.offset, f.data.length]
    : f.kind === 'evicted'
      ? ['evicted', f.stream, f.offset, f.lost]
      : f.kind === 'exit'
        ? ['exit', (f.status as { exit_code: number }).exit_code]
        : ['error', f.error];

test('proc.stream: output from each offset as binary frames, then the exit frame', async () => {
  const id = await start(['burst', '600']);
  await callMethod(ep, V, 'proc.wait', { id });
  const cases: [string, Record<string, unknown>, unknown[]][] = [
    [
      'from 0',
      {},
      [
        ['stdout', 0, 600],
        ['stderr', 0, 1],
        ['exit', 0],
      ],
    ],
    [
      'from offsets',
      { stdout_offset: 590, stderr_offset: 1 },
      [
        ['stdout', 590, 10],
        ['exit', 0],
      ],
    ],
    [
      'stderr only',
      { streams: ['stderr'] },
      [
        ['stderr', 0, 1],
        ['exit', 0],
      ],
    ],
    [
      'past the end',
      { stdout_offset: 5000 },
      [
        ['stderr', 0, 1],
        ['exit', 0],
      ],
    ],
  ];
  for (const [name, p, want] of cases) assert.deepEqual((await frames({ id, ...p })).map(brief), want, name);
});

test('proc.stream: an evicted offset gets an evicted frame with the bytes lost, then the oldest kept byte', async () => {
  const id = await start(['burst', '2500']);
  await callMethod(ep, V, 'proc.wait', { id });
  const got = await frames({ id, streams: ['stdout'] });
  assert.deepEqual(got.map(brief), [
    ['evicted', 'stdout', 1500, 1500],
    ['stdout', 1500, 1000],
    ['exit', 0],
  ]);
  const data = got[1];
  assert.ok(data?.kind === 'data' && data.data.equals(Buffer.alloc(1000, 'a')));
});

test('proc.stream follows live output; closing it detaches (the process runs on); an unknown id is a JSON 404', async () => {
  const id = await start(['follow']);
  const res = await openFramed(ep, V, 'proc.stream', { id });
  const dec = new FrameDecoder();
  const seen: BinFrame[] = [];
  res.on('data', (c: Buffer) => seen.push(...dec.push(c)));
  live.get('follow')?.stdout('one');
  for (let i = 0; i < 200 && seen.length === 0; i++) await sleep(5);
  assert.deepEqual(seen.map(brief), [['stdout', 0, 3]]);
  res.destroy();
  await sleep(50);
  assert.equal(aborts, 0, 'a client going away does not kill the process');
  const shown = (await callMethod(ep, V, 'proc.show', { id })) as { state: string };
  assert.equal(shown.state, 'running');
  // Attach again from offset 3: the rest, live, then the end.
  const again = frames({ id, stdout_offset: 3 });
  await sleep(20);
  live.get('follow')?.stdout('two');
  live.get('follow')?.exit({ kind: 'exited', code: 5 });
  assert.deepEqual((await again).map(brief), [
    ['stdout', 3, 3],
    ['exit', 5],
  ]);
  await assert.rejects(
    openFramed(ep, V, 'proc.stream', { id: 'p-000000000000' }),
    (e: unknown) => e instanceof RemoteError && e.code === 'not_found' && e.status === 404,
  );
});

/** Reads from a socket until `want` matches what came (bounded). */
async function readUntil(sock: Socket, got: { text: string }, want: RegExp): Promise<void> {
  for (let i = 0; i < 400 && !want.test(got.text); i++) await sleep(5);
  assert.match(got.text, want);
}

test('proc.pty: 101, raw bytes both ways, resize by proc.resize, exit by proc.wait, closed at the end', async () => {
  const { socket, headers } = await openPty(ep, V, 'proc.pty', { ref: 'dev', argv: ['echo'], cols: 100, rows: 30 });
  const id = String(headers[HEADER_PROC_ID]);
  assert.match(id, /^p-[0-9a-f]{12}$/);
  const got = { text: '' };
  let closed = false;
  socket.on('data', (d: Buffer) => (got.text += d.toString()));
  socket.on('close', () => (closed = true));
  await readUntil(socket, got, /tty=true 100x30\n/);
  socket.write('hello');
  await readUntil(socket, got, /HELLO/);
  await callMethod(ep, V, 'proc.resize', { id, cols: 120, rows: 40 });
  for (let i = 0; i < 200 && resizes.length === 0; i++) await sleep(5);
  assert.deepEqual(resizes, ['120x40']);
  socket.write('q');
  const status = (await callMethod(ep, V, 'proc.wait', { id })) as { exit_code: number };
  assert.equal(status.exit_code, 7);
  for (let i = 0; i < 200 && !closed; i++) await sleep(5);
  assert.ok(closed, 'the daemon closes the terminal once the process ended');
});

test('proc.pty: detach by closing, attach again by id from an offset; refusals are HTTP answers', async () => {
  const first = await openPty(ep, V, 'proc.pty', { ref: 'dev', argv: ['echo'] });
  const id = String(first.headers[HEADER_PROC_ID]);
  const one = { text: '' };
  first.socket.on('data', (d: Buffer) => (one.text += d.toString()));
  await readUntil(first.socket, one, /80x24\n/);
  first.socket.destroy();
  await sleep(30);
  assert.equal(((await callMethod(ep, V, 'proc.show', { id })) as { state: string }).state, 'running');
  const again = await openPty(ep, V, 'proc.pty', { id, offset: 3 });
  const two = { text: '' };
  again.socket.on('data', (d: Buffer) => (two.text += d.toString()));
  await readUntil(again.socket, two, /^=true 80x24\n$/);
  again.socket.write('x');
  await readUntil(again.socket, two, /X$/);
  again.socket.write('q');
  await callMethod(ep, V, 'proc.wait', { id });
  // A process not on a terminal, a pty method without its upgrade, an upgrade of a unary method.
  const plain = await start(['burst', '1']);
  await assert.rejects(openPty(ep, V, 'proc.pty', { id: plain }), /not on a terminal/);
  await assert.rejects(callMethod(ep, V, 'proc.pty', { id: plain }), /opens a terminal: send it with/);
  await assert.rejects(openPty(ep, V, 'proc.show', { id: plain }), /does not open a terminal/);
  await assert.rejects(openPty(ep, V, 'proc.pty', { ref: 'dev' }), /invalid params for proc.pty/);
});

test('proc.pty: a body over the request limit is refused (413) before any upgrade', async () => {
  const x = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const sock = createConnection(socketPath);
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text }));
    sock.on('error', reject);
    sock.write(
      `POST /v1/proc.pty HTTP/1.1\r\nhost: b\r\nbanger-version: ${V}\r\nconnection: Upgrade\r\nupgrade: banger-pty\r\ncontent-length: ${2 * 1024 * 1024}\r\n\r\n`,
    );
  });
  assert.equal(x.status, 413, x.text);
  // And the unary route is untouched by all this: a plain request still answers.
  const r = await new Promise<number>((resolve) =>
    request({ socketPath, method: 'POST', path: '/v1/daemon.status', headers: { 'banger-version': V } }, (res) =>
      resolve(res.statusCode ?? 0),
    ).end('{}'),
  );
  assert.equal(r, 200);
});

test('@banger/sdk over this server: spawn/attach/exec follow proc.stream frames; vm.pty carries raw bytes', async () => {
  const { Banger } = await import('@banger/sdk');
  const used: string[] = [];
  const transport = {
    call: (m: string, p: unknown, o: { signal?: AbortSignal }) => {
      used.push(m);
      if (m === 'vm.show') return Promise.resolve({ id: 'a1b2c3d4e5f6', name: 'dev' });
      return callMethod(ep, V, m, p, o.signal ? { signal: o.signal } : {});
    },
    frames: (m: string, p: unknown, o: { signal?: AbortSignal }) => openFramed(ep, V, m, p, o.signal),
    pty: async (m: string, p: unknown, o: { signal?: AbortSignal }) => {
      const r = await openPty(ep, V, m, p, o.signal);
      return { socket: r.socket, procId: String(r.headers[HEADER_PROC_ID]) };
    },
  };
  const b = await Banger.connect({ transport, requestTimeout: 5000 });
  const vm = await b.vms.get('dev');
  const r = await vm.exec(['burst', '5']);
  assert.deepEqual(r, { exitCode: 0, signal: null, timedOut: false, stdout: 'aaaaa', stderr: 'e' });
  const h = await vm.spawn(['follow']);
  live.get('follow')?.stdout('abc');
  for (let i = 0; i < 200 && h.stdout.readableLength === 0; i++) await sleep(5);
  h.detach();
  const again = await b.processes.attach(h.id, { fromOffset: 1 });
  live.get('follow')?.stdout('def');
  live.get('follow')?.exit({ kind: 'exited', code: 0 });
  assert.equal((await again.wait()).stdout, 'bcdef');
  assert.ok(!used.includes('proc.read'), `no long-polling: ${used.join(' ')}`);
  // An attach from an evicted offset says how much was lost.
  const big = await vm.spawn(['burst', '1500']);
  await big.wait();
  const late = await b.processes.attach(big.id, { fromOffset: 0 });
  assert.equal((await late.wait()).stdout.length, 1000);
  assert.deepEqual(late.lost, { stdout: 500, stderr: 0 });
  const t = await vm.pty(['echo'], { cols: 90, rows: 20 });
  let text = '';
  t.stream.on('data', (d: Buffer) => (text += d.toString()));
  for (let i = 0; i < 200 && !text.includes('90x20'); i++) await sleep(5);
  await t.resize(91, 21);
  t.stream.write('q');
  assert.deepEqual(await t.wait(), { exitCode: 7, signal: null, timedOut: false });
  assert.match(text, /tty=true 90x20/);
});
