import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { AppError } from '../../errors.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import type { ProcessOps } from '../../system/process.js';
import { PortInUse, type VmmSpec } from '../driver.js';
import { QemuDriver } from './driver.js';
import { qmpCommand, qmpRunState } from './qmp.js';

/*
 * The qemu driver and its QMP client against a fake QMP server on a Unix
 * socket and pretend processes (pid + start time, pretend time, every signal
 * recorded). No qemu runs here; vm-run.test.ts boots real ones.
 */

const root = mkdtempSync(join(tmpdir(), 'qemu-drv-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function spec(over: Partial<VmmSpec> = {}): VmmSpec {
  const dir = join(root, `vm${n++}`);
  return {
    id: 'abc',
    name: 'dev',
    vcpu: 1,
    memoryMib: 512,
    accel: 'tcg',
    kernelPath: '/k/bzImage',
    initrdPath: undefined,
    cmdline: 'console=ttyS0',
    disks: [],
    net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:ab:cd:ef' },
    consoleLog: `${dir}-console.log`,
    controlSocket: `${dir}.qmp`,
    vmmLog: `${dir}-vmm.log`,
    ...over,
  };
}

/** How a pretend qemu reacts to a catchable signal: exits that many pretend ms later, or never. SIGKILL: at once. */
type Reaction = number | 'ignore';

/** Pretend processes: waiting advances `now` at once (to the exit, when it comes within the wait). */
class FakeProcesses implements ProcessOps {
  now = 0;
  readonly signals: { pid: number; signal: NodeJS.Signals; at: number }[] = [];
  readonly procs = new Map<number, { startTime: number; exitAt?: number; onTerm: Reaction }>();

  add(pid: number, onTerm: Reaction = 200): void {
    this.procs.set(pid, { startTime: 7000 + pid, onTerm });
  }

  exitLater(pid: number, ms: number): void {
    const p = this.procs.get(pid);
    if (p) p.exitAt = Math.min(this.now + ms, p.exitAt ?? Infinity);
  }

  private alive(pid: number): boolean {
    const p = this.procs.get(pid);
    if (p?.exitAt !== undefined && p.exitAt <= this.now) this.procs.delete(pid);
    return this.procs.has(pid);
  }

  startTime = async (pid: number): Promise<number | undefined> =>
    this.alive(pid) ? this.procs.get(pid)?.startTime : undefined;
  isAlive = async (pid: number, startTime: number): Promise<boolean> =>
    this.alive(pid) && this.procs.get(pid)?.startTime === startTime;
  signal = (pid: number, signal: NodeJS.Signals): boolean => {
    this.signals.push({ pid, signal, at: this.now });
    const p = this.procs.get(pid);
    if (!p || !this.alive(pid)) return false;
    const r = signal === 'SIGKILL' ? 0 : p.onTerm;
    if (r !== 'ignore') this.exitLater(pid, r);
    return true;
  };
  waitForExit = async (pid: number, _startTime: number, timeoutMs: number): Promise<boolean> => {
    if (!this.alive(pid)) return true;
    const at = this.procs.get(pid)?.exitAt;
    if (at !== undefined && at <= this.now + timeoutMs) {
      this.now = Math.max(this.now, at);
      return !this.alive(pid);
    }
    this.now += timeoutMs;
    return false;
  };
}

type QmpMode = 'honour-quit' | 'ignore-quit' | 'silent';

/** A QMP server on `path`: greeting, capabilities negotiation, then commands; records what it was sent. */
async function fakeQmp(
  t: TestContext,
  path: string,
  mode: QmpMode,
  onQuit: () => void = () => undefined,
): Promise<{ received: string[] }> {
  const received: string[] = [];
  // What `stop` and `cont` change, as in qemu: query-status reports "paused" after a stop.
  let status = 'running';
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    if (mode === 'silent') return;
    sock.write(
      `${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } })}\n`,
    );
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, i)) as { execute: string; arguments?: unknown };
        buf = buf.slice(i + 1);
        received.push(msg.execute);
        // An event first: the client must skip it.
        sock.write(`${JSON.stringify({ event: 'NIC_RX_FILTER_CHANGED', data: {} })}\n`);
        if (msg.execute === 'qmp_capabilities') sock.write('{"return": {}}\n');
        else if (msg.execute === 'quit') {
          sock.write('{"return": {}}\n');
          if (mode === 'honour-quit') {
            onQuit();
            sock.end();
          }
        } else if (msg.execute === 'query-status')
          sock.write(`${JSON.stringify({ return: { status, running: status === 'running' } })}\n`);
        else if (msg.execute === 'stop' || msg.execute === 'cont') {
          status = msg.execute === 'stop' ? 'paused' : 'running';
          sock.write('{"return": {}}\n');
        } else
          sock.write(
            `${JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${msg.execute} has not been found` } })}\n`,
          );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { received };
}

/** A driver whose spawn gives `pid`, a pretend process living as `onTerm` says. */
function driverWith(
  pid: number,
  onTerm: Reaction = 200,
): { driver: QemuDriver; procs: FakeProcesses; runner: FakeRunner } {
  const procs = new FakeProcesses();
  const runner = new FakeRunner().on('qemu-system-x86_64', () => {
    procs.add(pid, onTerm);
    return { pid };
  });
  return { driver: new QemuDriver(runner, 'qemu-system-x86_64', procs), procs, runner };
}

test('qemu driver: start spawns qemu detached and returns once its QMP socket is up', async (t) => {
  const s = spec();
  await fakeQmp(t, s.controlSocket, 'honour-quit');
  const { driver, procs, runner } = driverWith(501);
  const h = await driver.start(s);
  assert.deepEqual(h, { pid: 501, startTime: 7501, controlSocket: s.controlSocket });
  assert.equal(runner.callsTo('qemu-system-x86_64').length, 1);
  assert.equal(await driver.isAlive(h), true);
  assert.equal(
    await driver.isAlive({ ...h, startTime: 1 }),
    false,
    'the same pid with another start time is another process',
  );
  procs.procs.delete(501);
  assert.equal(await driver.isAlive(h), false);
});

test('qemu driver: the handles name the guest agent socket the spec asked for', async (t) => {
  const s = spec({ agentSocket: join(root, 'x.agent') });
  await fakeQmp(t, s.controlSocket, 'honour-quit');
  const { driver, runner } = driverWith(502);
  const h = await driver.start(s);
  assert.deepEqual(h, { pid: 502, startTime: 7502, controlSocket: s.controlSocket, agentSocket: s.agentSocket });
  const argv = runner.callsTo('qemu-system-x86_64')[0] ?? [];
  assert.ok(argv.includes(`socket,id=agent,path=${s.agentSocket},server=on,wait=off`), argv.join(' '));
});

test('qemu driver: an exit while starting names the log; a taken ssh port is PortInUse (the caller picks another)', async () => {
  const s = spec();
  const procs = new FakeProcesses();
  const runner = new FakeRunner().on('qemu-system-x86_64', { pid: 502 });
  const driver = new QemuDriver(runner, 'qemu-system-x86_64', procs);
  writeFileSync(
    s.vmmLog,
    "qemu-system-x86_64: -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:40022-:22'\n",
  );
  await assert.rejects(
    driver.start(s),
    (e: unknown) =>
      e instanceof PortInUse && e.port === 40022 && /could not bind the ssh port 127\.0\.0\.1:40022/.test(e.message),
  );

  // The same line for another port (an earlier attempt's, in the appended log) is not this start's failure.
  await assert.rejects(
    driver.start({ ...s, net: { mode: 'user', sshPort: 40023, allowOutbound: false, mac: s.net.mac } }),
    (e: unknown) =>
      !(e instanceof PortInUse) && e instanceof AppError && /^qemu exited while starting VM "dev"$/.test(e.message),
  );

  writeFileSync(
    s.vmmLog,
    'qemu-system-x86_64: -drive id=root,file=/v/root.qcow2: Could not open: No such file or directory\n',
  );
  await assert.rejects(
    driver.start(s),
    (e: unknown) => e instanceof AppError && e.code === 'operation_failed' && /Could not open/.test(e.hint ?? ''),
  );
});

test('qemu driver: kill --signal SIGTERM asks QMP to quit first; a VM that quits gets no signal', async (t) => {
  const s = spec();
  const { driver, procs } = driverWith(503);
  const qmp = await fakeQmp(t, s.controlSocket, 'honour-quit', () => procs.exitLater(503, 0));
  const h = await driver.start(s);
  await driver.kill(h, 'SIGTERM');
  assert.deepEqual(qmp.received, ['qmp_capabilities', 'quit']);
  assert.deepEqual(procs.signals, []);
  assert.equal(await driver.isAlive(h), false);
});

test('qemu driver: SIGTERM falls back to the signal after 3 s when QMP quit does not end qemu, then SIGKILL after 5 s more', async (t) => {
  for (const [onTerm, expected] of [
    [200, [['SIGTERM', 3000]]],
    [
      'ignore',
      [
        ['SIGTERM', 3000],
        ['SIGKILL', 8000],
      ],
    ],
  ] as const) {
    const s = spec();
    const { driver, procs } = driverWith(504, onTerm);
    const qmp = await fakeQmp(t, s.controlSocket, 'ignore-quit');
    const h = await driver.start(s);
    await driver.kill(h, 'SIGTERM');
    assert.deepEqual(qmp.received, ['qmp_capabilities', 'quit']);
    assert.deepEqual(
      procs.signals.map((x) => [x.signal, x.at]),
      expected,
      `qemu that ${onTerm === 'ignore' ? 'ignores' : 'honours'} SIGTERM`,
    );
    assert.equal(await driver.isAlive(h), false);
  }
});

test('qemu driver: with no QMP socket SIGTERM is still sent; the default kill is SIGKILL at once, without QMP', async (t) => {
  const s = spec();
  const { driver, procs } = driverWith(505);
  const qmp = await fakeQmp(t, s.controlSocket, 'honour-quit', () => procs.exitLater(505, 0));
  const h = await driver.start(s);
  await driver.kill({ ...h, controlSocket: join(root, 'absent.qmp') }, 'SIGTERM');
  assert.deepEqual(
    procs.signals.map((x) => x.signal),
    ['SIGTERM'],
  );

  const other = driverWith(506);
  const s2 = spec();
  const qmp2 = await fakeQmp(t, s2.controlSocket, 'honour-quit');
  const h2 = await other.driver.start(s2);
  await other.driver.kill(h2);
  assert.deepEqual(
    other.procs.signals.map((x) => [x.signal, x.at]),
    [['SIGKILL', 0]],
  );
  assert.deepEqual(qmp2.received, [], 'no QMP for SIGKILL');
  assert.deepEqual(qmp.received, []);
  await other.driver.kill(h2);
  assert.equal(other.procs.signals.length, 1, 'a dead VMM is left alone');
});

test('QMP client: negotiates, skips events, returns the result; an error reply and a silent server fail clearly', async (t) => {
  const sock = join(root, 'client.qmp');
  await fakeQmp(t, sock, 'ignore-quit');
  assert.deepEqual(await qmpCommand(sock, 'query-status'), { status: 'running', running: true });
  await assert.rejects(
    qmpCommand(sock, 'nope'),
    (e: unknown) => e instanceof AppError && e.message === 'QMP nope failed: The command nope has not been found',
  );
  const silent = join(root, 'silent.qmp');
  await fakeQmp(t, silent, 'silent');
  await assert.rejects(
    qmpCommand(silent, 'query-status', undefined, 100),
    /QMP query-status on .*silent\.qmp timed out after 100 ms/,
  );
  await assert.rejects(qmpCommand(join(root, 'missing.qmp'), 'quit'), /QMP connection to .*missing\.qmp failed/);
});

test('qemu driver: pause is QMP stop, resume QMP cont; runState reads query-status', async (t) => {
  const sock = join(root, 'pause.qmp');
  const qmp = await fakeQmp(t, sock, 'ignore-quit');
  const { driver } = driverWith(506);
  const h = { pid: 506, startTime: 1, controlSocket: sock };
  assert.equal(await driver.runState(h), 'running');
  await driver.pause(h);
  assert.equal(await driver.runState(h), 'paused');
  await driver.resume(h);
  assert.equal(await driver.runState(h), 'running');
  assert.deepEqual(
    qmp.received.filter((c) => c !== 'qmp_capabilities'),
    ['query-status', 'stop', 'query-status', 'cont', 'query-status'],
  );
  await assert.rejects(driver.pause({ ...h, controlSocket: join(root, 'absent.qmp') }), /QMP connection to/);
});

test('qmpRunState: only "paused" is paused; every other stopped status is other', () => {
  const cases: [unknown, string][] = [
    [{ status: 'running', running: true, singlestep: false }, 'running'],
    [{ status: 'paused', running: false }, 'paused'],
    [{ status: 'shutdown', running: false }, 'other'],
    [{ status: 'internal-error', running: false }, 'other'],
    [{ status: 'inmigrate', running: false }, 'other'],
    [{ status: 'running', running: false }, 'other'],
    [{}, 'other'],
    [null, 'other'],
    [undefined, 'other'],
  ];
  for (const [reply, want] of cases) assert.equal(qmpRunState(reply), want, JSON.stringify(reply));
});
