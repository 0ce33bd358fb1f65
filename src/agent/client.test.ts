import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { AgentClient, type AgentClientOptions } from './client.js';
import { encodeFrame } from './codec.js';
import { duplexPair } from './duplex-pair.js';
import { FakeAgent, type FakeAgentOptions } from '../../test/fakes/agent.js';
import { FrameType, WINDOW_INITIAL } from './protocol.js';
import { LIVENESS_HINT } from './liveness.js';
import type { AppError } from '../errors.js';

async function setup(
  opts: FakeAgentOptions = {},
  clientOpts: AgentClientOptions = {},
): Promise<{ client: AgentClient; fake: FakeAgent }> {
  const [host, guest] = duplexPair();
  const fake = new FakeAgent(guest, opts);
  const client = await AgentClient.connect(host, clientOpts);
  return { client, fake };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('connect performs the handshake; health answers', async () => {
  const { client, fake } = await setup({ name: 'fake 9' });
  assert.equal(client.agent.name, 'fake 9');
  assert.deepEqual(await client.health(), { uptimeMs: 1234, sessions: 0, name: 'fake-agent' });
  assert.equal(fake.received[0]?.type, FrameType.HELLO);
  assert.deepEqual(fake.violations, []);
  client.close();
});

test('an agent speaking another version is refused by name and version', async () => {
  const [host, guest] = duplexPair();
  new FakeAgent(guest, { version: 1, name: 'banger-agent 1' });
  await assert.rejects(
    AgentClient.connect(host),
    /\(banger-agent 1\) answered protocol version 1 .* banger speaks version 2/,
  );
});

test('a guest that never answers times out with what was awaited', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const [host, guest] = duplexPair();
  new FakeAgent(guest, { silent: ['hello'] });
  const connecting = AgentClient.connect(host);
  t.mock.timers.tick(10_000);
  await assert.rejects(connecting, { message: 'the guest agent did not answer hello within 10 s' });

  const { client } = await setup({ silent: ['health', 'exec'] }, { label: 'the guest agent of "dev"' });
  const health = client.health();
  const run = client.exec({ argv: ['true'] });
  await tick();
  t.mock.timers.tick(9_999);
  await tick();
  t.mock.timers.tick(1);
  await assert.rejects(health, { message: 'the guest agent of "dev" did not answer health within 10 s' });
  await assert.rejects(run.exit, { message: 'the guest agent of "dev" did not answer exec true within 10 s' });
  assert.ok(client.isOpen, 'a timeout ends the session, not the connection');
  client.close();
});

test('exec: output, exit status, stdin passthrough', async () => {
  const { client, fake } = await setup({
    command: (io) => {
      if (io.request.argv[0] === 'cat') {
        io.onStdin((d) => (d ? io.stdout(d) : io.exit({ kind: 'exited', code: 0 })));
        return;
      }
      io.stdout('hi\n');
      io.stderr('warn\n');
      io.exit({ kind: 'exited', code: 7 });
    },
  });
  const run = client.exec({
    argv: ['sh', '-c', 'echo hi; echo warn >&2; exit 7'],
    env: { PATH: '/bin' },
    cwd: '/tmp',
    uid: 0,
  });
  const [out, err, status] = await Promise.all([text(run.stdout), text(run.stderr), run.exit]);
  assert.deepEqual([out, err, status], ['hi\n', 'warn\n', { kind: 'exited', code: 7 }]);
  assert.equal(await run.started, 4242);

  const cat = client.exec({ argv: ['cat'], stdin: Buffer.from('from the host\n') });
  assert.equal(await text(cat.stdout), 'from the host\n');
  assert.deepEqual(await cat.exit, { kind: 'exited', code: 0 });

  const piped = client.exec({ argv: ['cat'], stdin: 'pipe' });
  piped.stdin?.write('a');
  piped.stdin?.end('b');
  assert.equal(await text(piped.stdout), 'ab');

  const streamed = client.exec({ argv: ['cat'], stdin: Readable.from([Buffer.from('x'), Buffer.from('y')]) });
  assert.equal(await text(streamed.stdout), 'xy');
  assert.deepEqual(fake.violations, []);
  client.close();
});

test('exec that cannot start rejects started and exit with the guest error', async () => {
  const { client } = await setup({ command: () => 'exec nope: No such file or directory' });
  const run = client.exec({ argv: ['nope'] });
  await assert.rejects(run.started, { message: 'exec nope failed in the guest: exec nope: No such file or directory' });
  await assert.rejects(run.exit, /exec nope failed in the guest/);
  client.close();
});

test('kill, resize and abort reach the command', async () => {
  const seen: string[] = [];
  const { client, fake } = await setup({
    command: (io) => {
      io.onSignal((s) => {
        seen.push(`signal ${s}`);
        io.exit({ kind: 'signaled', signal: s });
      });
      io.onResize((r, c) => seen.push(`${r}x${c}`));
      io.onAbort(() => seen.push('abort'));
    },
  });
  const run = client.exec({ argv: ['sleep', '100'], pty: { rows: 24, cols: 80 } });
  await run.started;
  assert.equal(fake.execSessions()[0]?.request.pty, true);
  run.resize(50, 132);
  run.kill('SIGINT');
  assert.deepEqual(await run.exit, { kind: 'signaled', signal: 2 });
  assert.deepEqual(seen, ['50x132', 'signal 2']);
  assert.throws(() => run.resize(0, 80), /window size 0x80/);
  assert.throws(() => run.kill('SIGNOPE' as NodeJS.Signals), /signal SIGNOPE is not a signal/);

  const other = client.exec({ argv: ['sleep', '100'] });
  await other.started;
  other.abort();
  assert.deepEqual(await other.exit, { kind: 'signaled', signal: 9 });
  assert.deepEqual(seen.slice(2), ['abort']);
  client.close();
});

test('output flow control: the agent sends only what the host has room for', async () => {
  const big = Buffer.alloc(4 * WINDOW_INITIAL, 0x61);
  let io: import('../../test/fakes/agent.js').FakeExecIO | undefined;
  const { client, fake } = await setup({
    command: (x) => {
      io = x;
      x.stdout(big);
      x.exit({ kind: 'exited', code: 0 });
    },
  });
  const run = client.exec({ argv: ['yes'] });
  await run.started;
  for (let i = 0; i < 5; i++) await tick();
  // Nobody reads stdout yet: the agent stops at one window.
  assert.equal(io?.queued, big.length - WINDOW_INITIAL);
  const out = await text(run.stdout);
  assert.equal(out.length, big.length);
  assert.deepEqual(await run.exit, { kind: 'exited', code: 0 });

  // And stdin: a megabyte through a 128 KiB window without overrunning it.
  let got = 0;
  const { client: c2, fake: f2 } = await setup({
    command: (x) =>
      x.onStdin((d) => {
        if (d) got += d.length;
        else x.exit({ kind: 'exited', code: 0 });
      }),
  });
  const sink = c2.exec({ argv: ['cat'], stdin: Buffer.alloc(1 << 20) });
  await sink.exit;
  assert.equal(got, 1 << 20);
  assert.deepEqual([...fake.violations, ...f2.violations], []);
  client.close();
  c2.close();
});

test('many sessions at once keep their own streams', async () => {
  const { client } = await setup({
    command: (io) => {
      const n = io.request.argv[1] as string;
      setImmediate(() => {
        io.stdout(`out ${n}`);
        io.stderr(`err ${n}`);
        io.exit({ kind: 'exited', code: Number(n) });
      });
    },
  });
  const runs = Array.from({ length: 20 }, (_, i) => client.exec({ argv: ['job', String(i)] }));
  const results = await Promise.all(runs.map(async (r) => [await text(r.stdout), await text(r.stderr), await r.exit]));
  results.forEach((r, i) => assert.deepEqual(r, [`out ${i}`, `err ${i}`, { kind: 'exited', code: i }]));
  const [health, ports] = await Promise.all([client.health(), client.ports()]);
  assert.equal(health.sessions, 0);
  assert.deepEqual(ports, { truncated: false, ports: [] });
  client.close();
});

test('ports, shutdown and identity', async () => {
  const ports = [{ protocol: 'tcp' as const, family: 4 as const, address: '0.0.0.0', port: 22, uid: 0 }];
  const { client, fake } = await setup({ ports });
  assert.deepEqual(await client.ports(), { truncated: false, ports });
  await client.setIdentity({ hostname: 'dev', entropy: Buffer.alloc(32, 7) });
  assert.deepEqual(fake.identities, [{ hostname: 'dev', entropy: Buffer.alloc(32, 7) }]);
  await assert.rejects(client.setIdentity({ hostname: 'no spaces' }), { code: 'bad_request' });
  await client.shutdown();
  assert.deepEqual(fake.shutdowns, ['poweroff']);
  client.close();
});

test('putFile and getFile move bytes both ways, bounded', async () => {
  const { client, fake } = await setup();
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = i % 251;
  await client.putFile('/root/blob', data, { mode: 0o600 });
  assert.deepEqual(fake.files.get('/root/blob'), { data, mode: 0o600 });
  await client.putFile('/root/s', Readable.from([Buffer.from('ab'), Buffer.from('c')]), { size: 3 });
  assert.equal(fake.files.get('/root/s')?.data.toString(), 'abc');

  const got = await client.getFile('/root/blob');
  assert.ok(got.data.equals(data));
  assert.equal(got.info.mode, 0o600);

  await assert.rejects(client.getFile('/nope'), {
    message: 'get /nope failed in the guest: open /nope: No such file or directory',
  });
  await assert.rejects(client.getFile('/root/blob', { maxBytes: 1000 }), {
    code: 'bad_request',
    message: 'guest file /root/blob is 300000 bytes, more than the 1000 allowed',
  });
  await assert.rejects(
    client.putFile('/root/x', Readable.from([Buffer.from('abcd')]), { size: 3 }),
    /has more than the 3 bytes announced/,
  );
  await assert.rejects(
    client.putFile('/root/x', Readable.from([Buffer.from('ab')]), { size: 3 }),
    /ended after 2 of the 3 bytes/,
  );
  assert.equal(fake.files.has('/root/x'), false);
  assert.ok(client.isOpen, 'refusals end sessions, not the connection');
  assert.equal((await client.health()).name, 'fake-agent');
  assert.deepEqual(fake.violations, []);
  client.close();
});

test('a malformed or hostile agent fails the connection and every waiting call', async () => {
  const cases: [string, (fake: FakeAgent) => void, RegExp][] = [
    [
      'oversized frame',
      (f) => f.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x11])),
      /malformed frame: the guest agent sent a malformed frame: payload length 4294967295 exceeds/,
    ],
    ['frame type agents never send', (f) => f.send(FrameType.EXEC, 1), /sent frame type EXEC, which agents never send/],
    ['unknown type', (f) => f.send(0x99, 1), /sent frame type 0x99/],
    [
      'malformed reply',
      (f) => f.send(FrameType.HEALTH_REPLY, 1, Buffer.from([1])),
      /malformed HEALTH_REPLY frame: malformed HEALTH_REPLY payload: truncated in uptime_ms/,
    ],
    [
      'fatal error',
      (f) => f.send(FrameType.ERROR, 0, Buffer.from([0, 1, 0, 0, 0, 0, ...Buffer.from('bad frame')])),
      /ended the connection: bad frame \(protocol\)/,
    ],
    ['closed', (f) => f.sendRaw(Buffer.alloc(0)), /closed the connection/],
  ];
  for (const [name, act, re] of cases) {
    const [host, guest] = duplexPair();
    const fake = new FakeAgent(guest, { silent: ['health'] });
    const client = await AgentClient.connect(host);
    const pending = client.health();
    await tick();
    act(fake);
    if (name === 'closed') guest.end();
    await assert.rejects(pending, (e: Error) => re.test(e.message) && /while waiting for health/.test(e.message), name);
    assert.equal(client.isOpen, false, name);
    await assert.rejects(client.health(), re, `${name}: later calls fail at once`);
    await assert.rejects(client.exec({ argv: ['x'] }).exit, re, `${name}: exec too`);
  }
});

test('a malformed ERROR answering a request fails that request too, not only the connection', async () => {
  // Found by the fuzz test: the session was forgotten before the ERROR was decoded, so this call hung.
  for (const call of ['health', 'ports', 'get', 'shutdown', 'identity', 'put', 'exec'] as const) {
    const { client, fake } = await setup({ silent: ['health', 'ports', 'get', 'shutdown', 'identity', 'put', 'exec'] });
    const pending =
      call === 'health'
        ? client.health()
        : call === 'ports'
          ? client.ports()
          : call === 'get'
            ? client.getFile('/x')
            : call === 'shutdown'
              ? client.shutdown()
              : call === 'identity'
                ? client.setIdentity({ hostname: 'x' })
                : call === 'put'
                  ? client.putFile('/x', Buffer.from('x'))
                  : client.exec({ argv: ['x'] }).exit;
    await tick();
    fake.send(FrameType.ERROR, 1); // an ERROR without even its code
    const settled = await Promise.race([
      pending.then(
        () => 'resolved',
        (e: Error) => e.message,
      ),
      new Promise((r) => setTimeout(() => r('still pending'), 2000)),
    ]);
    assert.match(
      String(settled),
      /malformed ERROR frame: malformed ERROR payload: truncated in code \(while waiting for /,
      call,
    );
  }
});

test('frames for sessions the host gave up on are ignored', async () => {
  const { client, fake } = await setup();
  fake.send(FrameType.STDOUT, 999, Buffer.from('late'));
  fake.sendRaw(encodeFrame(FrameType.EXIT, 998, Buffer.from([0, 0, 0, 0, 0])));
  assert.equal((await client.health()).name, 'fake-agent');
  client.close();
});

test('an agent respawned mid-command (the virtio-serial stream stays open) fails the command once a liveness check goes unanswered', async () => {
  const { client, fake } = await setup(
    { command: () => undefined }, // runs until told otherwise
    { label: 'the guest agent of "dev"', liveness: { quietMs: 30, answerMs: 80 } },
  );
  const run = client.exec({ argv: ['sleep', '100'] });
  await run.started;
  fake.restart();
  await assert.rejects(run.exit, (e: Error) => {
    assert.match(
      e.message,
      /^the guest agent of "dev" stopped answering: no reply to a liveness check within 80 ms \(the agent restarted, or the guest hung\)/,
    );
    assert.equal((e as AppError).hint, LIVENESS_HINT);
    return true;
  });
  assert.equal(client.isOpen, false);
  assert.ok(
    fake.received.some((f) => f.type === FrameType.HEALTH),
    'the check was a health request',
  );
});

test('a quiet command on a live agent is kept: the liveness checks are answered; no checks without sessions', async () => {
  let finish: (() => void) | undefined;
  const { client, fake } = await setup(
    { command: (io) => void (finish = () => io.exit({ kind: 'exited', code: 0 })) },
    { liveness: { quietMs: 20, answerMs: 200 } },
  );
  const run = client.exec({ argv: ['sleep', '1'] });
  await run.started;
  await new Promise((r) => setTimeout(r, 250));
  const checks = fake.received.filter((f) => f.type === FrameType.HEALTH).length;
  assert.ok(checks >= 2, `${checks} health checks in 250 ms of silence`);
  finish?.();
  assert.deepEqual(await run.exit, { kind: 'exited', code: 0 });
  const after = fake.received.filter((f) => f.type === FrameType.HEALTH).length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(fake.received.filter((f) => f.type === FrameType.HEALTH).length, after, 'idle: no checks');
  assert.ok(client.isOpen);
  client.close();
});
