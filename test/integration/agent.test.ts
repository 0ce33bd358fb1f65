/**
 * Integration (no VM, no network beyond loopback): the real guest agent, built
 * for the host (dist/guest/banger-agent-host, sanitizers on, shutdown and
 * hostname stubbed into its --test-dir), driven by the real AgentClient over
 * a Unix socket and over stdio. Commands run on this host, as the test user.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, before, test } from 'node:test';
import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame, FrameDecoder } from '../../src/agent/codec.js';
import * as P from '../../src/agent/payloads.js';
import { FrameType, MAX_PAYLOAD, PROTOCOL_VERSION, WINDOW_INITIAL, type Frame } from '../../src/agent/protocol.js';
import { AGENT_HOST, processAlive, startHostAgent, type HostAgent } from '../helpers/agent-host.js';
import { sh } from '../helpers/home.js';
import { missingRoot, requirements } from '../helpers/requirements.js';

const skip = requirements(existsSync(AGENT_HOST) ? [] : [AGENT_HOST], 'run npm run build');
const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

let agent: HostAgent;
let client: AgentClient;

before(async () => {
  if (skip) return;
  agent = await startHostAgent({ mode: 'socket' });
  client = await AgentClient.connect(await agent.connect(), { timeoutMs: 10_000 });
});

after(async () => {
  if (skip) return;
  client?.close();
  await agent?.stop();
});

/** Reads a stream until re matches (bounded by the test's own timeout), returning what was read. */
async function waitFor(stream: Readable, re: RegExp, ms = 10_000): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; got ${JSON.stringify(seen)}`)), ms);
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (re.test(seen)) {
        clearTimeout(timer);
        stream.off('data', onData);
        stream.pause();
        resolve(seen);
      }
    };
    stream.on('data', onData);
    stream.resume(); // a stream paused by an earlier wait does not flow again by itself
  });
}

async function waitUntil(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('health answers with the agent name', { skip }, async () => {
  const h = await client.health();
  assert.equal(h.name, 'banger-agent 1');
  assert.equal(client.agent.version, PROTOCOL_VERSION);
  assert.ok(h.uptimeMs > 0);
});

test("exec sh -c 'echo hi; exit 7' prints hi and exits 7", { skip }, async () => {
  const run = client.exec({ argv: ['sh', '-c', 'echo hi; echo oops >&2; exit 7'], env: ENV });
  const [out, err, status] = await Promise.all([text(run.stdout), text(run.stderr), run.exit]);
  assert.deepEqual({ out, err, status }, { out: 'hi\n', err: 'oops\n', status: { kind: 'exited', code: 7 } });
  assert.ok((await run.started) > 1);
});

test('argv, env and cwd arrive exactly; start failures name the step', { skip }, async () => {
  const run = client.exec({
    argv: ['sh', '-c', 'pwd; printf "%s|" "$0" "$1" "$FOO"; env -0 | tr -cd "\\000" | wc -c', 'a b', "'; rm -rf /'"],
    env: { ...ENV, FOO: 'x\ny' },
    cwd: '/tmp',
  });
  const out = await text(run.stdout);
  assert.equal(out, "/tmp\na b|'; rm -rf /'|x\ny|3\n", 'only the given environment (PATH, FOO, PWD)');

  const missing = client.exec({ argv: ['/nonexistent/prog'], env: ENV });
  await assert.rejects(missing.exit, {
    message: 'exec /nonexistent/prog failed in the guest: exec /nonexistent/prog: No such file or directory',
  });
  const badCwd = client.exec({ argv: ['true'], env: ENV, cwd: '/nonexistent' });
  await assert.rejects(badCwd.exit, /chdir \/nonexistent: No such file or directory/);
});

test('exec as another user', { skip: skip || requirements(missingRoot('to switch users')) }, async () => {
  const run = client.exec({ argv: ['sh', '-c', 'id -u; id -g; id -G'], env: ENV, uid: 65534 });
  assert.equal(await text(run.stdout), '65534\n65534\n65534\n');
});

test('stdin passes through, binary-safe, through the flow-control windows', { skip }, async () => {
  const data = randomBytes(3 << 20);
  const run = client.exec({ argv: ['sh', '-c', 'cat; echo done >&2'], env: ENV, stdin: data });
  const [out, err, status] = await Promise.all([
    run.stdout.toArray().then((parts: Buffer[]) => Buffer.concat(parts)),
    text(run.stderr),
    run.exit,
  ]);
  assert.equal(createHash('sha256').update(out).digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.equal(err, 'done\n');
  assert.deepEqual(status, { kind: 'exited', code: 0 });

  const piped = client.exec({ argv: ['sh', '-c', 'read line; echo "got $line"'], env: ENV, stdin: 'pipe' });
  piped.stdin?.write('hello\n');
  assert.equal(await text(piped.stdout), 'got hello\n');
  piped.stdin?.end();
});

test('a command killed by a signal reports the signal', { skip }, async () => {
  const self = client.exec({ argv: ['sh', '-c', 'kill -TERM $$'], env: ENV });
  assert.deepEqual(await self.exit, { kind: 'signaled', signal: 15 });

  const sleeper = client.exec({ argv: ['sleep', '100'], env: ENV });
  await sleeper.started;
  sleeper.kill('SIGINT');
  assert.deepEqual(await sleeper.exit, { kind: 'signaled', signal: 2 });
});

test('abort and a lost connection kill the whole process group', { skip }, async () => {
  const run = client.exec({ argv: ['sh', '-c', 'sleep 100 & echo $!; wait'], env: ENV });
  const bg = Number((await waitFor(run.stdout, /\d+\n/)).trim());
  assert.ok(processAlive(bg));
  run.abort();
  assert.deepEqual(await run.exit, { kind: 'signaled', signal: 9 });
  await waitUntil(() => !processAlive(bg), 'the background sleep did not die');

  const other = await AgentClient.connect(await agent.connect());
  // A new connection replaces the current one: reconnect the shared client afterwards.
  const orphan = other.exec({ argv: ['sh', '-c', 'sleep 100 & echo $!; wait'], env: ENV });
  const pid = Number((await waitFor(orphan.stdout, /\d+\n/)).trim());
  other.close();
  await assert.rejects(orphan.exit, /closed/);
  await waitUntil(() => !processAlive(pid), 'the sleep of a closed connection did not die');
  client = await AgentClient.connect(await agent.connect());
  assert.equal((await client.health()).name, 'banger-agent 1');
});

/** CPU clock ticks (user + system) a host process has used so far. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('an exited command whose output waits for credit does not make the agent spin', { skip }, async () => {
  // More than a window (128 KiB) but less than window + pipe (64 KiB): the command exits with
  // output left in its pipe, which reports HUP while the host has not read: that must not wake the loop.
  const run = client.exec({ argv: ['sh', '-c', 'head -c 150000 /dev/zero; echo bye >&2; exit 3'], env: ENV });
  await run.started;
  await new Promise((r) => setTimeout(r, 300)); // the command writes a window's worth and exits
  const before = cpuTicks(agent.proc.pid as number);
  await new Promise((r) => setTimeout(r, 1000));
  const used = cpuTicks(agent.proc.pid as number) - before;
  assert.ok(used < 20, `the waiting agent used ${used} clock ticks of CPU in a second`);
  const [out, err, status] = await Promise.all([run.stdout.toArray(), text(run.stderr), run.exit]);
  assert.equal(Buffer.concat(out as Buffer[]).length, 150000);
  assert.deepEqual([err, status], ['bye\n', { kind: 'exited', code: 3 }]);
});

test('PTY: window size, resize, Ctrl-C reaches the command', { skip }, async () => {
  const size = client.exec({
    argv: ['sh', '-c', 'stty size; test -t 0 && echo tty'],
    env: ENV,
    pty: { rows: 33, cols: 77 },
  });
  const out = await text(size.stdout);
  assert.equal(out, '33 77\r\ntty\r\n');
  assert.deepEqual(await size.exit, { kind: 'exited', code: 0 });

  const winch = client.exec({
    argv: ['sh', '-c', 'trap "stty size" WINCH; echo ready; while :; do sleep 0.05; done'],
    env: ENV,
    pty: { rows: 24, cols: 80 },
    stdin: 'pipe',
  });
  await waitFor(winch.stdout, /ready/);
  winch.resize(50, 132);
  await waitFor(winch.stdout, /50 132/);
  winch.stdin?.write('\x03'); // ^C through the line discipline: SIGINT to the foreground group
  const status = await winch.exit;
  assert.deepEqual(status, { kind: 'signaled', signal: 2 });

  const cat = client.exec({ argv: ['cat'], env: ENV, pty: { rows: 24, cols: 80 }, stdin: 'pipe' });
  cat.stdin?.write('typed\n');
  await waitFor(cat.stdout, /typed\r\ntyped\r\n/); // terminal echo, then cat's copy
  cat.stdin?.write('\x03');
  assert.deepEqual(await cat.exit, { kind: 'signaled', signal: 2 });
});

test('ports lists a TCP listener and a bound UDP socket of this host', { skip }, async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  try {
    const tcpPort = (server.address() as { port: number }).port;
    const udpPort = udp.address().port;
    const { ports } = await client.ports();
    const uid = process.getuid?.() ?? 0;
    assert.deepEqual(
      ports.find((p) => p.protocol === 'tcp' && p.port === tcpPort),
      { protocol: 'tcp', family: 4, address: '127.0.0.1', port: tcpPort, uid },
    );
    assert.deepEqual(
      ports.find((p) => p.protocol === 'udp' && p.port === udpPort),
      { protocol: 'udp', family: 4, address: '127.0.0.1', port: udpPort, uid },
    );
  } finally {
    server.close();
    udp.close();
  }
  const { ports } = await client.ports();
  assert.equal(
    ports.some((p) => p.address === '127.0.0.1' && p.port === (server.address() as { port: number } | null)?.port),
    false,
  );
});

test('file put and get: bytes, mode, atomic replace, refusals', { skip }, async () => {
  const dir = join(agent.dir, 'files');
  mkdirSync(dir);
  const open = (await client.health()).sessions;
  const data = randomBytes(200_000);
  await client.putFile(join(dir, 'blob'), data, { mode: 0o640 });
  assert.ok(readFileSync(join(dir, 'blob')).equals(data));
  assert.equal(statSync(join(dir, 'blob')).mode & 0o7777, 0o640);

  const got = await client.getFile(join(dir, 'blob'));
  assert.ok(got.data.equals(data));
  assert.equal(got.info.mode, 0o640);
  assert.equal(got.info.size, data.length);

  // A symlink at the path is replaced, not followed.
  writeFileSync(join(dir, 'target'), 'keep');
  symlinkSync(join(dir, 'target'), join(dir, 'link'));
  await client.putFile(join(dir, 'link'), Buffer.from('new'), { mode: 0o600 });
  assert.equal(readFileSync(join(dir, 'target'), 'utf8'), 'keep');
  assert.equal(readFileSync(join(dir, 'link'), 'utf8'), 'new');

  await assert.rejects(
    client.putFile(join(dir, 'nodir', 'x'), Buffer.from('x')),
    new RegExp(`create a file in ${dir}/nodir: No such file or directory`),
  );
  await assert.rejects(client.getFile(join(dir, 'absent')), /open .*absent: No such file or directory/);
  assert.equal(sh(['mkfifo', join(dir, 'fifo')]).code, 0);
  await assert.rejects(client.getFile(join(dir, 'fifo')), /fifo is not a regular file/);
  await assert.rejects(
    client.getFile(join(dir, 'blob'), { maxBytes: 1000 }),
    /is 200000 bytes, more than the 1000 allowed/,
  );
  assert.deepEqual(
    sh(['sh', '-c', `ls -A ${dir}`])
      .stdout.split('\n')
      .filter(Boolean)
      .sort(),
    ['blob', 'fifo', 'link', 'target'],
  );
  assert.equal((await client.health()).sessions, open, 'refused sessions are closed in the agent');
});

test('file list: lstat entries, links not followed, bounded by count and reply size, errors', { skip }, async () => {
  const dir = join(agent.dir, 'listing');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'f'), 'abc', { mode: 0o640 });
  symlinkSync('/etc', join(dir, 'link'));
  symlinkSync('nowhere', join(dir, 'dangling'));
  assert.equal(sh(['mkfifo', join(dir, 'fifo')]).code, 0);
  const r = await client.listDir(dir, 100);
  assert.equal(r.truncated, false);
  const seen = r.entries
    .map((e) => [e.name, e.kind, e.kind === 'directory' ? 0 : e.size, e.name === 'f' ? e.mode : 0])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  assert.deepEqual(seen, [
    ['dangling', 'symlink', 7, 0],
    ['f', 'file', 3, 0o640],
    ['fifo', 'other', 0, 0],
    ['link', 'symlink', 4, 0],
    ['sub', 'directory', 0, 0],
  ]);
  const two = await client.listDir(dir, 2);
  assert.deepEqual([two.entries.length, two.truncated], [2, true]);
  const exact = await client.listDir(dir, 5);
  assert.deepEqual([exact.entries.length, exact.truncated], [5, false]);

  // 600 names of 250 bytes do not fit one 128 KiB reply: the agent stops short and says so.
  const big = join(agent.dir, 'biglist');
  mkdirSync(big);
  for (let i = 0; i < 600; i++) writeFileSync(join(big, `${String(i).padStart(4, '0')}${'n'.repeat(246)}`), '');
  const cut = await client.listDir(big, 65536);
  assert.equal(cut.truncated, true);
  assert.ok(cut.entries.length > 400 && cut.entries.length < 600, String(cut.entries.length));

  await assert.rejects(client.listDir(join(dir, 'link'), 10), /link is not a directory/);
  await assert.rejects(client.listDir(join(dir, 'f'), 10), /f is not a directory/);
  await assert.rejects(client.listDir(join(dir, 'absent'), 10), (e: Error & { detail?: string }) => {
    assert.match(e.message, /lstat .*absent: No such file or directory/);
    assert.match(e.detail ?? '', /\(errno 2\)/);
    return true;
  });
  // max_entries 0 never reaches the agent; a raw one is refused there, naming the field.
  assert.throws(() => P.encodeFileList(dir, 0), /max entries 0/);
});

test('several sessions at once', { skip }, async () => {
  const runs = Array.from({ length: 12 }, (_, i) =>
    client.exec({ argv: ['sh', '-c', `sleep 0.1; echo out$0; echo err$0 >&2; exit $0`, String(i)], env: ENV }),
  );
  const health = client.health();
  const results = await Promise.all(runs.map(async (r) => [await text(r.stdout), await text(r.stderr), await r.exit]));
  results.forEach((r, i) => assert.deepEqual(r, [`out${i}\n`, `err${i}\n`, { kind: 'exited', code: i }]));
  assert.equal((await health).name, 'banger-agent 1');
});

test('a stalled agent times out with what was awaited', { skip }, async () => {
  const slow = await AgentClient.connect(await agent.connect(), { timeoutMs: 1000, label: 'the stalled agent' });
  agent.proc.kill('SIGSTOP');
  try {
    await assert.rejects(slow.health(), { message: 'the stalled agent did not answer health within 1 s' });
  } finally {
    agent.proc.kill('SIGCONT');
  }
  assert.equal((await slow.health()).name, 'banger-agent 1');
  slow.close();
  client = await AgentClient.connect(await agent.connect());
});

test('set identity and shutdown act on the stubs of the host build', { skip }, async () => {
  const own = await startHostAgent({ mode: 'stdio' });
  try {
    const c = await AgentClient.connect(own.stream as import('node:stream').Duplex);
    await c.setIdentity({ hostname: 'dev-1', entropy: randomBytes(64) });
    assert.equal(readFileSync(join(own.dir, 'hostname'), 'utf8'), 'dev-1');
    assert.equal(readFileSync(join(own.dir, 'entropy'), 'utf8'), '64\n');
    await assert.rejects(c.setIdentity({ hostname: 'bad host' }), { code: 'bad_request' });
    // Protocol v2 records (issue 17): the C decoder reads every field the host encodes.
    await c.setIdentity({
      hostname: 'vm-2',
      entropy: randomBytes(256),
      machineId: '0123456789abcdef0123456789abcdef',
      clockNs: 1_796_000_000_123_456_789n,
      network: { ip: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', mac: '52:54:00:0a:0b:0c' },
      reseed: true,
      openGate: true,
      rngSample: true,
    });
    await c.setIdentity({ network: { ip: '192.168.7.9/32', gateway: '192.168.7.1', mac: 'fe:00:00:00:00:01' } });
    assert.equal(readFileSync(join(own.dir, 'hostname'), 'utf8'), 'vm-2');
    assert.equal(readFileSync(join(own.dir, 'entropy'), 'utf8'), '64\n256\n');
    assert.equal(readFileSync(join(own.dir, 'clock'), 'utf8'), '1796000000123456789\n');
    assert.equal(readFileSync(join(own.dir, 'reseed'), 'utf8'), '1\n');
    assert.equal(readFileSync(join(own.dir, 'rng-sample'), 'utf8'), '1\n');
    assert.equal(
      readFileSync(join(own.dir, 'identity'), 'utf8'),
      [
        'identity hostname=dev-1',
        'identity hostname=vm-2 machine_id=0123456789abcdef0123456789abcdef ip=10.0.2.15/24 gw=10.0.2.2 mac=52:54:00:0a:0b:0c dns=10.0.2.3 gate=1',
        'identity ip=192.168.7.9/32 gw=192.168.7.1 mac=fe:00:00:00:00:01',
        '',
      ].join('\n'),
    );
    await c.shutdown();
    assert.deepEqual(await own.exited, { code: 0, signal: null });
    assert.equal(readFileSync(join(own.dir, 'poweroff'), 'utf8'), 'poweroff\n');
    assert.match(String(await c.closed), /closed the connection/);
    assert.doesNotMatch(own.stderr(), /Sanitizer|runtime error/);
  } finally {
    await own.stop();
  }
});

test('the host build refuses to run without --test-dir', { skip }, () => {
  const r = sh([AGENT_HOST, '--stdio']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the host build needs --test-dir DIR/);
});

test('no sanitizer reports from the shared agent', { skip }, () => {
  assert.doesNotMatch(agent.stderr(), /Sanitizer|runtime error/);
  assert.equal(agent.proc.exitCode, null, 'still running');
});

/** Feeds raw bytes to a fresh agent on stdio, ends its input, returns what it wrote and how it exited. */
async function talk(
  input: Buffer,
): Promise<{ frames: Frame[]; exit: { code: number | null; signal: string | null }; stderr: string }> {
  const a = await startHostAgent({ mode: 'stdio' });
  try {
    const out: Buffer[] = [];
    a.proc.stdout?.on('data', (d: Buffer) => out.push(d));
    a.proc.stdin?.end(input);
    const timer = setTimeout(() => a.proc.kill('SIGKILL'), 10_000);
    const exit = await a.exited;
    clearTimeout(timer);
    return { frames: new FrameDecoder().push(Buffer.concat(out)), exit, stderr: a.stderr() };
  } finally {
    await a.stop();
  }
}

const fr = (type: number, session: number, payload?: Buffer | string): Buffer =>
  encodeFrame(type, session, typeof payload === 'string' ? Buffer.from(payload) : payload);
const HELLO = fr(FrameType.HELLO, 0, P.encodeHostHello({ minVersion: 2, maxVersion: 2 }));
const HEALTH = fr(FrameType.HEALTH, 99);
const errorsOf = (frames: Frame[]): string[] =>
  frames.filter((f) => f.type === FrameType.ERROR).map((f) => `${f.session}: ${P.decodeError(f.payload).message}`);

test('malformed SET_IDENTITY v2 records are refused by the agent, naming the field', { skip }, async () => {
  const raw = (tag: number, v: number[]): Buffer =>
    fr(FrameType.SET_IDENTITY, 7, Buffer.from([tag, 0, v.length, ...v]));
  const cases: [Buffer, RegExp][] = [
    [raw(3, new Array<number>(16).fill(0)), /^7: machine-id must be 16 bytes, not all zero \(got 16\)$/],
    [raw(4, [1, 2]), /^7: clock must be a non-zero u64 of ns \(got 2 bytes\)$/],
    [raw(5, [10, 0, 2, 15, 33, 10, 0, 2, 2, 0x52, 0x54, 0, 1, 2, 3]), /^7: network prefix 33 is not within 1\.\.32$/],
    [raw(5, [10, 0, 2, 15, 24, 10, 0, 2, 2, 0x01, 0x54, 0, 1, 2, 3]), /^7: network MAC is a multicast address$/],
    [raw(5, [10, 0, 2]), /^7: network record must be 15 or 19 bytes \(got 3\)$/],
    [raw(6, [1]), /^7: reseed record takes no value \(got 1 bytes\)$/],
    [raw(7, [1]), /^7: open-gate record takes no value \(got 1 bytes\)$/],
    [raw(8, [1]), /^7: rng-sample record takes no value \(got 1 bytes\)$/],
    [raw(9, []), /^7: SET_IDENTITY record tag 9 is unknown to this agent$/],
  ];
  for (const [bytes, re] of cases) {
    const { frames, exit, stderr } = await talk(Buffer.concat([HELLO, bytes]));
    const errors = errorsOf(frames);
    assert.equal(errors.length, 1, String(re));
    assert.match(errors[0]!, re);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.doesNotMatch(stderr, /Sanitizer|runtime error/);
  }
});

test('malformed input: fatal errors close the stream, session errors keep it', { skip }, async () => {
  const oversized = Buffer.alloc(9);
  oversized.writeUInt32BE(MAX_PAYLOAD + 1, 0);
  const execBytes = P.encodeExec({ argv: ['true'] });
  const nulArgv = Buffer.from(execBytes);
  nulArgv.writeUInt8(0, nulArgv.length - 5); // argv[0] "true" becomes "tru\0" (envc follows it)
  const cases: [string, Buffer, 'fatal' | 'session', RegExp][] = [
    ['oversized length', Buffer.concat([HELLO, oversized]), 'fatal', /^0: payload length exceeds the maximum 131072$/],
    [
      'no HELLO first',
      HEALTH,
      'fatal',
      /^0: the first frame must be HELLO on session 0 \(got type 0x10 on session 99\)$/,
    ],
    [
      'bad magic',
      fr(FrameType.HELLO, 0, 'BANGERAX\0\x01\0\x01'),
      'fatal',
      /HELLO must be 12 bytes starting with "BANGERAG"/,
    ],
    [
      'no common version',
      fr(FrameType.HELLO, 0, P.encodeHostHello({ minVersion: 3, maxVersion: 4 })),
      'fatal',
      /the host speaks versions 3\.\.4, this agent speaks 2/,
    ],
    ['second HELLO', Buffer.concat([HELLO, HELLO]), 'fatal', /HELLO after the handshake/],
    [
      'agent-only type',
      Buffer.concat([HELLO, fr(FrameType.STDOUT, 5, 'x')]),
      'fatal',
      /type 0x23 is sent by the agent/,
    ],
    [
      'opening frame on session 0',
      Buffer.concat([HELLO, fr(FrameType.HEALTH, 0)]),
      'fatal',
      /frame type 0x10 on session 0/,
    ],
    [
      'STDIN beyond the window',
      Buffer.concat([
        HELLO,
        fr(FrameType.EXEC, 5, P.encodeExec({ argv: ['sleep', '5'] })),
        ...Array.from({ length: 5 }, () => fr(FrameType.STDIN, 5, Buffer.alloc(WINDOW_INITIAL / 4 + 1))),
      ]),
      'fatal',
      /STDIN on session 5 exceeds its window/,
    ],
    [
      'truncated EXEC payload',
      Buffer.concat([HELLO, fr(FrameType.EXEC, 5, execBytes.subarray(0, 23)), HEALTH]),
      'session',
      /^5: EXEC payload is truncated/,
    ],
    [
      'NUL in argv',
      Buffer.concat([HELLO, fr(FrameType.EXEC, 5, nulArgv), HEALTH]),
      'session',
      /^5: argv\[0\] contains a NUL byte$/,
    ],
    [
      'unknown type',
      Buffer.concat([HELLO, fr(0x77, 5, 'x'), HEALTH]),
      'session',
      /^5: frame type 0x77 is unknown to this agent/,
    ],
    [
      'bad PUT mode',
      Buffer.concat([
        HELLO,
        fr(
          FrameType.FILE_PUT,
          5,
          Buffer.concat([Buffer.from([0, 0, 0x10, 0]), Buffer.alloc(16), P.encodeFileGet('/x')]),
        ),
        HEALTH,
      ]),
      'session',
      /^5: FILE_PUT mode 010000 is more than permission bits$/,
    ],
    [
      'frames for closed sessions',
      Buffer.concat([
        HELLO,
        fr(FrameType.STDIN, 5, 'x'),
        fr(FrameType.WINDOW, 6, P.encodeU32(5)),
        fr(FrameType.ABORT, 7),
        HEALTH,
      ]),
      'session',
      /^$/,
    ],
    [
      'a frame cut short by the end of input',
      Buffer.concat([HELLO, HEALTH, fr(FrameType.HEALTH, 100).subarray(0, 5)]),
      'session',
      /^$/,
    ],
  ];
  for (const [name, input, kind, re] of cases) {
    const { frames, exit, stderr } = await talk(input);
    assert.doesNotMatch(stderr, /Sanitizer|runtime error/, name);
    const errors = errorsOf(frames);
    if (kind === 'fatal') {
      assert.deepEqual(exit, { code: 2, signal: null }, `${name}: exit 2`);
      assert.equal(errors.length, 1, `${name}: one error: ${errors.join('; ')}`);
      assert.match(errors[0] as string, re, name);
    } else {
      assert.deepEqual(exit, { code: 0, signal: null }, `${name}: clean exit at end of input`);
      assert.match(errors.join('; '), re, name);
      assert.ok(
        frames.some((f) => f.type === FrameType.HEALTH_REPLY && f.session === 99),
        `${name}: the stream still answers`,
      );
    }
  }
});

test('virtio-serial semantics: after a fatal error the agent resyncs on the next HELLO', { skip }, async () => {
  const oversized = Buffer.alloc(9);
  oversized.writeUInt32BE(0xffffffff, 0);
  const input = Buffer.concat([
    Buffer.from('stale bytes from an old connection'),
    HELLO,
    oversized,
    Buffer.from('junk'),
    HELLO,
    HEALTH,
  ]);
  const a = await startHostAgent({ mode: 'stdio', serial: true });
  try {
    const frames: Frame[] = [];
    const d = new FrameDecoder();
    a.proc.stdout?.on('data', (b: Buffer) => frames.push(...d.push(b)));
    a.proc.stdin?.write(input);
    await waitUntil(
      () => frames.some((f) => f.type === FrameType.HEALTH_REPLY),
      'no HEALTH_REPLY after the second HELLO',
    );
    assert.deepEqual(
      frames.map((f) => f.type),
      [FrameType.HELLO, FrameType.ERROR, FrameType.HELLO, FrameType.HEALTH_REPLY],
    );
    assert.equal(a.proc.exitCode, null, 'still running');
  } finally {
    await a.stop();
  }
});
