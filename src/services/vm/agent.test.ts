import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, test } from 'node:test';
import { FakeAgent, type FakeAgentOptions } from '../../../test/fakes/agent.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import { AppError } from '../../errors.js';
import { Paths } from '../../system/paths.js';
import { nullLogger } from '../context.js';
import { socketDialer, VmAgents, type AgentDialer } from './agent.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

const VM = { id: 'a1b2c3d4e5f6a7b8', name: 'dev' };

/** A dialer handing out fake agents (one per dial) with `opts`; records each. */
function fakes(opts: FakeAgentOptions | (() => FakeAgentOptions) = {}) {
  const agents: { agent: FakeAgent; host: Duplex; guest: Duplex }[] = [];
  const dial: AgentDialer = async () => {
    const [host, guest] = duplexPair();
    const agent = new FakeAgent(guest, typeof opts === 'function' ? opts() : opts);
    agents.push({ agent, host, guest });
    return host;
  };
  return { agents, dial };
}

function paths(): Paths {
  const root = mkdtempSync(join(tmpdir(), 'vmagents-'));
  roots.push(root);
  return new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
}

/** Waits (bounded: 200 turns of the event loop, 1 ms apart) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), what);
}

test('one connection per VM: made on first use, reused by the next calls, closed by close()', async () => {
  const f = fakes({ ports: [{ protocol: 'tcp', family: 4, address: '0.0.0.0', port: 22, uid: 0 }] });
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000 });
  assert.equal((await agents.health(VM)).name, 'fake-agent');
  assert.deepEqual(
    (await agents.ports(VM)).ports.map((p) => p.port),
    [22],
  );
  await Promise.all([agents.health(VM), agents.health(VM)]);
  assert.equal(f.agents.length, 1, 'one dial for four calls');
  assert.deepEqual(f.agents[0]?.agent.violations, []);
  agents.close(VM.id);
  assert.equal(agents.has(VM.id), false);
  await until(() => f.agents[0]?.guest.readableEnded === true, 'the guest side sees the connection end');
});

test('a guest that never answers an operation times out with an error naming the VM and where to look; the next call reconnects', async () => {
  let n = 0;
  const f = fakes(() => (n++ === 0 ? { silent: ['health'] } : {}));
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 50 });
  await assert.rejects(agents.health(VM), (e: AppError) => {
    assert.equal(e.code, 'operation_failed');
    assert.match(e.message, /the guest agent of VM "dev" did not answer health within 50 ms/);
    assert.match(e.hint ?? '', /banger vm logs dev/);
    assert.match(e.hint ?? '', /guest assets older than v3/);
    return true;
  });
  assert.equal(agents.has(VM.id), false, 'the stuck connection is dropped');
  assert.equal((await agents.health(VM)).name, 'fake-agent');
  assert.equal(f.agents.length, 2, 'a new connection');
});

test('a guest that never answers the handshake times out naming the VM', async () => {
  const f = fakes({ silent: ['hello'] });
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 50 });
  await assert.rejects(agents.health(VM), (e: AppError) => {
    assert.match(e.message, /the guest agent of VM "dev" did not answer hello within 50 ms/);
    assert.match(e.hint ?? '', /banger vm logs dev/);
    return true;
  });
  assert.equal(agents.has(VM.id), false);
});

test('an agent of another protocol version is refused, naming the VM and both versions', async () => {
  const f = fakes({ version: 1 });
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000 });
  await assert.rejects(
    agents.health(VM),
    /VM "dev" \(fake-agent\) answered protocol version 1 .*banger speaks version 2/,
  );
});

test('a connection the guest ends (agent restart, daemon restart on the other side) is replaced on the next call', async () => {
  const f = fakes();
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000 });
  await agents.health(VM);
  f.agents[0]?.guest.destroy();
  await until(() => !agents.has(VM.id), 'the ended connection is forgotten');
  await agents.health(VM);
  assert.equal(f.agents.length, 2);
  // A fresh manager (a restarted daemon adopting the VM) connects on first use.
  const adopted = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000 });
  assert.equal((await adopted.health(VM)).name, 'fake-agent');
  assert.equal(f.agents.length, 3);
});

test('an idle connection is closed after idleMs, leaving the agent to other clients; the next call reconnects', async () => {
  const f = fakes();
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000, idleMs: 5 });
  await agents.health(VM);
  await until(() => !agents.has(VM.id), 'closed when idle');
  await until(() => f.agents[0]?.guest.readableEnded === true, 'the guest side sees the connection end');
  await agents.health(VM);
  assert.equal(f.agents.length, 2);
});

test('shutdown: the agent is asked to power off, and the connection is closed', async () => {
  const f = fakes();
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: f.dial, timeoutMs: 1000 });
  await agents.shutdown(VM);
  assert.deepEqual(f.agents[0]?.agent.shutdowns, ['poweroff']);
  assert.equal(agents.has(VM.id), false);
});

test('no agent socket: the error names the VM and the socket, and nothing is cached', async () => {
  const p = paths();
  const agents = new VmAgents({ paths: p, log: nullLogger, timeoutMs: 1000 });
  await assert.rejects(agents.health(VM), (e: AppError) => {
    assert.equal(e.code, 'operation_failed');
    assert.ok(e.message.includes(`VM "dev" at ${p.agentSocket(VM.id)}: ENOENT`), e.message);
    return true;
  });
  assert.equal(agents.has(VM.id), false);
  await assert.rejects(socketDialer(p)(VM, 1000), /ENOENT/);
});

test('waitBoot: one long handshake covers the boot; a VMM that exits (socket closed) or a cancel ends the wait at once', async () => {
  // The agent answers once the "guest" opened its port: the fake is attached only later.
  let attach: (() => void) | undefined;
  const late: AgentDialer = async () => {
    const [host, guest] = duplexPair();
    const held: Buffer[] = [];
    guest.on('data', (c: Buffer) => held.push(c));
    attach = () => {
      guest.removeAllListeners('data');
      const agent = new FakeAgent(guest);
      for (const c of held) guest.emit('data', c);
      void agent;
    };
    return host;
  };
  const agents = new VmAgents({ paths: paths(), log: nullLogger, dial: late, timeoutMs: 20 });
  const waiting = agents.waitBoot(VM, 5000, new AbortController().signal);
  await new Promise((r) => setTimeout(r, 60)); // longer than the per-answer bound: the boot bound applies
  attach?.();
  assert.equal((await waiting).name, 'fake-agent');
  assert.equal(agents.has(VM.id), false, 'the boot connection is not kept');

  // The VMM exits: qemu's socket closes.
  let hostEnd: Duplex | undefined;
  const closing: AgentDialer = async () => {
    const [host, guest] = duplexPair();
    hostEnd = host;
    setTimeout(() => guest.destroy(), 5);
    return host;
  };
  const a2 = new VmAgents({ paths: paths(), log: nullLogger, dial: closing, timeoutMs: 20 });
  await assert.rejects(a2.waitBoot(VM, 60_000, new AbortController().signal), /VM "dev".*closed the connection/);
  assert.ok(hostEnd?.destroyed);

  // qemu makes its socket while it starts: a dial that finds none yet is retried within the bound.
  let misses = 0;
  const f = fakes();
  const slowSocket: AgentDialer = async (vm, t) => {
    if (misses++ < 2) throw new Error('ENOENT');
    return f.dial(vm, t);
  };
  const a4 = new VmAgents({ paths: paths(), log: nullLogger, dial: slowSocket, timeoutMs: 1000 });
  assert.equal((await a4.waitBoot(VM, 5000, new AbortController().signal)).name, 'fake-agent');
  assert.equal(misses, 3);

  const ac = new AbortController();
  const silent = fakes({ silent: ['hello'] });
  const a3 = new VmAgents({ paths: paths(), log: nullLogger, dial: silent.dial, timeoutMs: 20 });
  const w = a3.waitBoot(VM, 60_000, ac.signal);
  setTimeout(() => ac.abort(), 5);
  await assert.rejects(w, (e: AppError) => e.code === 'cancelled');
});

test('a respawned agent fails the waiting command with the liveness hint; a paused or held VM is not judged until it runs again', async () => {
  const f = fakes({ command: () => undefined }); // commands run until the test says
  let paused = false;
  const agents = new VmAgents({
    paths: paths(),
    log: nullLogger,
    dial: f.dial,
    timeoutMs: 1000,
    liveness: { quietMs: 20, answerMs: 60 },
    paused: () => paused,
  });
  const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  for (const how of ['paused', 'held'] as const) {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const exit = agents.use(VM, async (c) => {
      const e = c.exec({ argv: ['sleep', '100'] });
      await e.started;
      started();
      return e.exit;
    });
    let settled = false;
    exit.then(
      () => (settled = true),
      () => (settled = true),
    );
    await running;
    let release = (): void => undefined;
    if (how === 'paused') paused = true;
    else release = agents.hold(VM.id);
    f.agents.at(-1)?.agent.restart(); // from here on nothing is answered
    await wait(300);
    assert.equal(settled, false, `${how}: the command still waits`);
    paused = false;
    release();
    const keepAlive = setTimeout(() => undefined, 5000); // the checks' own timer does not hold the process
    await assert.rejects(exit, (e: AppError) => {
      assert.match(
        e.message,
        /^the guest agent of VM "dev" stopped answering: no reply to a liveness check within 60 ms/,
      );
      assert.match(e.hint ?? '', /the next command reconnects .*`banger vm logs dev`/);
      return true;
    });
    clearTimeout(keepAlive);
    assert.equal(agents.has(VM.id), false, `${how}: the dead connection is forgotten`);
  }
});
