import { PROTOCOL_VERSION } from '../../agent/protocol.js';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { defaultConfig } from '../../config/config.js';
import { ASSETS_VERSION } from '../../guest/assets.js';

import { openStore } from '../../store/db.js';
import { PortRepo } from '../../store/ports.js';
import { SnapshotRepo } from '../../store/snapshots.js';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { freeLoopbackPort } from '../../system/net.js';
import { formatPublication } from './portspec.js';
import { AppError } from '../../errors.js';
import { ImageRepo, type ImageRow } from '../../store/images.js';
import type { KernelManifest } from '../kernel/manifest.js';
import { VmRepo, type VmRow } from '../../store/vms.js';
import { IpRepo } from '../../store/ips.js';
import { FakeNetHost } from '../../../test/fakes/nethost.js';
import { BridgeNetwork } from '../network/bridge.js';
import { VmRecords } from '../network/dns.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { vmRow } from '../../../test/helpers/rows.js';
import { NodeRunner } from '../../system/node-runner.js';
import { signalProcess } from '../../system/process.js';
import { Paths } from '../../system/paths.js';
import {
  PortInUse,
  type VmmCapabilities,
  type VmmDriver,
  type VmmHandles,
  type VmmRunState,
  type VmmSpec,
} from '../../vmm/driver.js';
import { QEMU_CAPABILITIES } from '../../vmm/qemu/argv.js';
import { FIRECRACKER_CAPABILITIES } from '../../vmm/firecracker/driver.js';
import { nullLogger, type OpContext } from '../context.js';
import { FakeAgent, type FakeAgentOptions } from '../../../test/fakes/agent.js';
import { duplexPair } from '../../agent/duplex-pair.js';
import { VmAgents } from './agent.js';
import { ImageLeases } from '../image/lease.js';
import { refreshImage } from '../image/refresh.js';
import { BootFailure } from './bootwatch.js';
import { VmService, type Clock } from './service.js';
import type { SshKeys } from './sshkeys.js';
import type { VmState } from './states.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
/** Every runner made by setup(): strict, and checked after each test even where the service swallows errors. */
const runners: FakeRunner[] = [];
afterEach(() => {
  for (const r of runners.splice(0)) r.assertNoUnexpected();
});

/** Pretend time for the graceful stop: sleeping advances it at once. */
class FakeClock implements Clock {
  t = 0;
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
    await new Promise((r) => setImmediate(r));
  }
}

interface FakeVmm {
  startTime: number;
  sshPort: number;
  /** Where ssh reaches it: 127.0.0.1 (user mode) or its guest address (bridge mode). */
  host: string;
  /** Pretend time at which the process exits by itself (its guest powered off). */
  exitAt?: number;
  /** Its vCPUs are stopped (`stop`/PATCH /vm): the guest acts on nothing, a poweroff included. */
  paused?: boolean;
}

/**
 * VMM processes as pid + start time (a reused pid has another start time),
 * guests that power off some time after `poweroff`, and every signal sent,
 * with the pretend time it was sent at.
 */
class FakeDriver implements VmmDriver {
  kind: 'qemu' | 'firecracker' = 'qemu';
  /** qemu's by default; a test may declare another VMM's. */
  capabilities: VmmCapabilities = QEMU_CAPABILITIES;
  /** Live processes by pid. */
  readonly procs = new Map<number, FakeVmm>();
  specs: VmmSpec[] = [];
  readonly signals: { pid: number; signal: NodeJS.Signals; at: number }[] = [];
  exitOnStart = false;
  /** How long a guest takes to power off after `poweroff`; undefined: it ignores it. */
  poweroffMs: number | undefined = 1500;
  /** How many starts fail because the ssh port was taken meanwhile. */
  portTaken = 0;
  private pid = 1000;
  private nextStartTime = 500;

  constructor(private readonly clock: FakeClock) {}

  /** Spawned, then never reports its control socket: the daemon dies in that window. */
  hangAfterSpawn = false;
  /** pids of every kill request, including ones for processes this fake never started (found on /proc). */
  readonly killed: number[] = [];

  async start(spec: VmmSpec, _signal?: AbortSignal, onSpawn?: (h: VmmHandles) => Promise<void>): Promise<VmmHandles> {
    this.specs.push(spec);
    const sshPort = spec.net.mode === 'user' ? spec.net.sshPort : 22;
    if (this.portTaken > 0) {
      this.portTaken--;
      throw new PortInUse(sshPort, `qemu could not bind the ssh port 127.0.0.1:${sshPort}`);
    }
    const pid = this.pid++;
    const startTime = this.nextStartTime++;
    const host = spec.net.mode === 'user' ? '127.0.0.1' : (/banger\.ip=([0-9.]+)\//.exec(spec.cmdline)?.[1] ?? '?');
    if (!this.exitOnStart) this.procs.set(pid, { startTime, sshPort, host });
    const h = { pid, startTime, controlSocket: spec.controlSocket };
    await onSpawn?.(h);
    if (this.hangAfterSpawn) await new Promise(() => undefined);
    return h;
  }

  private reap(): void {
    for (const [pid, p] of this.procs)
      if (p.exitAt !== undefined && p.exitAt <= this.clock.now()) this.procs.delete(pid);
  }

  async kill(h: VmmHandles, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.killed.push(h.pid);
    if (!(await this.isAlive(h))) return;
    this.signals.push({ pid: h.pid, signal, at: this.clock.now() });
    this.procs.delete(h.pid);
  }

  async isAlive(h: VmmHandles): Promise<boolean> {
    this.reap();
    return this.procs.get(h.pid)?.startTime === h.startTime;
  }

  /** pause/resume/runState calls, as `<verb> <pid>`. */
  readonly runCalls: string[] = [];
  /** What runState answers instead of the fake's own state (a VMM that says something else, or fails). */
  runStateSays: VmmRunState | 'fail' | undefined;

  async pause(h: VmmHandles): Promise<void> {
    this.runCalls.push(`pause ${h.pid}`);
    const p = this.procs.get(h.pid);
    if (p) p.paused = true;
  }

  /** resume fails (the VMM does not take `cont`). */
  failResume = false;

  async resume(h: VmmHandles): Promise<void> {
    this.runCalls.push(`resume ${h.pid}`);
    if (this.failResume) throw new AppError('operation_failed', 'QMP cont failed');
    const p = this.procs.get(h.pid);
    if (p) p.paused = false;
  }

  async runState(h: VmmHandles): Promise<VmmRunState> {
    this.runCalls.push(`runState ${h.pid}`);
    if (this.runStateSays === 'fail') throw new AppError('operation_failed', 'QMP query-status timed out');
    return this.runStateSays ?? (this.procs.get(h.pid)?.paused ? 'paused' : 'running');
  }

  /** The guest forwarded on `sshPort` was asked to power off (a paused guest does nothing). */
  poweroff(sshPort: number, host = '127.0.0.1'): void {
    for (const p of this.procs.values()) {
      if (p.sshPort === sshPort && p.host === host && this.poweroffMs !== undefined && !p.paused)
        p.exitAt = this.clock.now() + this.poweroffMs;
    }
  }
}

/** The host commands create, start and stop run, answered as on a healthy host; `poweroffs` records each ssh poweroff. */
function hostRunner(
  driver: FakeDriver,
  clock: FakeClock,
  poweroffs: { at: number; command: string; port: number }[],
): FakeRunner {
  const isPoweroff = (a: readonly string[]): boolean => a[0] === 'ssh' && /\bpoweroff\b/.test(a.at(-1) ?? '');
  return new FakeRunner()
    .on((a) => a[0] === 'qemu-img' && a[1] === 'create', {})
    .on('mkfs.ext4', {})
    .on((a) => a[0] === 'debugfs' && a.includes('-f'), {})
    .on((a) => a[0] === 'rm' && a[1] === '-f', {})
    .on(isPoweroff, (a) => {
      const port = Number(a[a.indexOf('-p') + 1]);
      poweroffs.push({ at: clock.now(), command: a.at(-1) ?? '', port });
      driver.poweroff(port, (a.find((x) => x.startsWith('root@')) ?? '').slice('root@'.length));
      return {};
    });
}

interface SetupOpts {
  probe?: 'ready' | 'none';
  runner?: (r: FakeRunner) => void;
  timeoutMs?: number;
  /** The image has the guest agent (current assets); each connection is a fake agent with these options. */
  agent?: FakeAgentOptions;
  /** The image's guest-assets version instead (e.g. 3: an agent whose shutdown is not orderly). */
  assetsVersion?: number;
  /** has_sshd in the image's manifest.json (no manifest when undefined). */
  hasSshd?: boolean;
  /** network_mode = "bridge", on a pretend host (FakeNetHost), with this dns_listen. */
  bridge?: { dnsListen?: string };
}

function setup(opts: SetupOpts = {}) {
  const root = mkdtempSync(join(tmpdir(), 'vmsvc-'));
  roots.push(root);
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  mkdirSync(paths.vmsDir, { recursive: true });
  mkdirSync(paths.runtimeDir, { recursive: true });
  const db = openStore(':memory:');
  const images = new ImageRepo(db);
  const vms = new VmRepo(db);
  const image: ImageRow = {
    id: 'img1',
    name: 'debian-bookworm',
    source: 'build',
    managed: true,
    dir: root,
    rootfsPath: join(root, 'rootfs.ext4'),
    workSeedPath: undefined,
    kernelName: 'k',
    distro: 'debian',
    sizeBytes: 1 << 30,
    assetsVersion: opts.assetsVersion ?? (opts.agent ? ASSETS_VERSION : 1),
    createdAt: 'now',
  };
  images.insert(image);
  if (opts.hasSshd !== undefined)
    writeFileSync(join(root, 'manifest.json'), JSON.stringify({ has_sshd: opts.hasSshd }));
  const leases = new ImageLeases();
  const clock = new FakeClock();
  const driver = new FakeDriver(clock);
  const poweroffs: { at: number; command: string; port: number }[] = [];
  const runner = hostRunner(driver, clock, poweroffs);
  opts.runner?.(runner);
  runners.push(runner);
  const config = { ...defaultConfig({ cpus: 2, memBytes: 8 * 2 ** 30 }), sshWaitTimeoutMs: opts.timeoutMs ?? 2000 };
  const netHost = new FakeNetHost();
  const records = new VmRecords();
  if (opts.bridge) {
    config.networkMode = 'bridge';
    if (opts.bridge.dnsListen !== undefined) config.dnsListen = opts.bridge.dnsListen;
  }
  const keys = {
    keyPath: join(root, 'id'),
    knownHosts: join(root, 'kh'),
    ensureKey: async () => 'ssh-ed25519 AAAA test',
    forget: async () => undefined,
  } as unknown as SshKeys;
  const deps: ConstructorParameters<typeof VmService>[0] = {
    paths,
    vms,
    images,
    driver,
    runner,
    keys,
    config,
    log: nullLogger,
    tscKhz: 2000000,
    host: { cpus: 2, memBytes: 8 * 2 ** 30 },
    accel: { accel: 'tcg', reason: 'test' },
    imageService: {
      ensure: async () => image,
      withRootfs: (id, fn) => leases.withShared(id, fn),
      kernelFilesFor: async () => ({
        dir: '/k',
        kernel: '/k/bzImage',
        initrd: '/k/initrd.img',
        modulesDisk: '/k/modules.ext4',
        manifest: {
          name: 'k',
          format: 'bzImage',
          initrd: 'banger',
          traits: { virtioMmio: 'module' },
        } as KernelManifest,
      }),
    },
    sshProbe: async () => {
      probes++;
      return opts.probe ?? 'ready';
    },
    stallMs: 60_000,
    clock,
    ports: new PortRepo(db),
    snaps: new SnapshotRepo(db),
  };
  if (opts.bridge)
    deps.bridge = new BridgeNetwork({ config, runner: netHost.runner, euid: 0, ips: new IpRepo(db), records });
  let probes = 0;
  /** Every fake agent connected to, in order. */
  const agents: FakeAgent[] = [];
  const agentOpts = opts.agent;
  if (agentOpts) {
    deps.agents = new VmAgents({
      paths,
      log: nullLogger,
      timeoutMs: 100,
      dial: async (vm) => {
        const [host, guest] = duplexPair();
        const onShutdown = (): void => driver.poweroff(vms.get(vm.id)?.sshPort ?? -1);
        agents.push(new FakeAgent(guest, { onShutdown, ...agentOpts }));
        return host;
      },
    });
  }
  const svc = new VmService(deps);
  /** A new daemon over the same store, files and processes (as after a kill -9). */
  const restart = (): VmService => new VmService(deps);
  return {
    svc,
    vms,
    images,
    image,
    paths,
    driver,
    runner,
    clock,
    poweroffs,
    restart,
    agents,
    leases,
    probes: () => probes,
    netHost,
    records,
  };
}

const ctx = (signal = new AbortController().signal): OpContext => ({
  opId: 'op-test',
  signal,
  progress: () => undefined,
});

test('create + delete: row, disks, VMM spec, and nothing left after delete', async () => {
  const { svc, vms, paths, driver, runner } = setup();
  const view = await svc.create({ name: 'dev', vcpu: 2, memory_mib: 1024 }, ctx());
  assert.equal(view.state, 'running');
  assert.equal(view.vcpu, 2);
  assert.match(view.ssh ?? '', /^127\.0\.0\.1:\d+$/);
  const spec = driver.specs[0];
  assert.ok(spec);
  assert.equal(spec.accel, 'tcg');
  assert.match(spec.cmdline, /banger\.hostname=dev/);
  assert.match(spec.cmdline, /tsc_early_khz=2000000/);
  assert.deepEqual(
    spec.disks.map((d) => d.serial),
    ['banger-root', 'banger-work', 'banger-modules'],
  );
  const qemuImg = runner.callsTo('qemu-img')[0] ?? [];
  assert.deepEqual(qemuImg.slice(0, 7), ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw']);
  assert.ok(qemuImg.includes('-b'), 'overlay over the shared base');
  assert.ok(
    runner.calls.some((c) => c.argv[0] === 'debugfs' && String(c.input).includes('authorized_keys')),
    'ssh key injected',
  );
  await svc.delete('dev', ctx());
  assert.deepEqual(vms.list(), []);
  assert.deepEqual(readdirSync(paths.vmsDir), []);
  assert.equal(driver.procs.size, 0);
});

for (const [params, re] of [
  [{ vcpu: 0 }, /^invalid vcpu 0: must be a whole number from 1 to 2$/],
  [{ vcpu: 1.5 }, /^invalid vcpu 1\.5:/],
  [{ memory_mib: -1 }, /^invalid memory_mib -1: must be at least 128 MiB$/],
  [{ memory_mib: 64 }, /^invalid memory_mib 64: must be at least 128 MiB$/],
  [{ disk_bytes: 1048576 }, /^invalid disk_bytes 1048576 \(1M\): must be at least 64M$/],
  [{ disk_bytes: 1.5 }, /^invalid disk_bytes 1\.5: must be at least 64M$/],
  [{ name: 'Bad_Name' }, /position 1/],
  // The host of setup(): 2 CPUs, 8 GiB.
  [{ memory_mib: 1e12 }, /^invalid memory_mib 1000000000000: more than this host's memory \(at most 8192 MiB\)$/],
  [{ memory_mib: 8193 }, /invalid memory_mib 8193: .*at most 8192 MiB/],
  [{ vcpu: 3 }, /^invalid vcpu 3: more than this host's 2 CPUs \(at most 2\)$/],
  [{ disk_bytes: 9 * 2 ** 40 }, /^invalid disk_bytes 9895604649984 \(9T\): larger than the maximum disk size, 8T$/],
  [{ name: '' }, /^invalid VM name "": the name is empty$/],
] as const) {
  test(`bad input ${JSON.stringify(params)} is rejected before anything is made`, async () => {
    const { svc, vms, paths, runner, driver } = setup();
    await assert.rejects(
      svc.create(params, ctx()),
      (e: Error & { code?: string }) => e.code === 'bad_request' && re.test(e.message),
    );
    assert.deepEqual(vms.list(), []);
    assert.deepEqual(readdirSync(paths.vmsDir), []);
    assert.equal(runner.calls.length, 0);
    assert.equal(driver.specs.length, 0);
  });
}

test('vm set refuses memory, vcpu and disk above the limits, naming them, and changes nothing', async () => {
  const { svc, vms } = setup();
  await svc.create({ name: 'dev', start: false }, ctx());
  const before = vms.byName('dev');
  await assert.rejects(
    svc.set('dev', { memory_mib: 1e12 }, ctx()),
    /invalid memory_mib 1000000000000: .*at most 8192 MiB/,
  );
  await assert.rejects(svc.set('dev', { vcpu: 65 }, ctx()), /invalid vcpu 65: .*at most 2/);
  await assert.rejects(
    svc.set('dev', { disk_bytes: 100 * 2 ** 40 }, ctx()),
    /invalid disk_bytes 109951162777600 \(100T\): larger than the maximum disk size, 8T/,
  );
  await assert.rejects(
    svc.set('dev', { disk_bytes: 2 ** 30 }, ctx()),
    /invalid disk_bytes 1073741824 \(1G\): smaller than the current 8589934592 \(8G\)$/,
  );
  await assert.rejects(svc.set('dev', {}, ctx()), /nothing to change/);
  assert.deepEqual(vms.byName('dev'), before);
});

test('an omitted name is generated', async () => {
  const { svc } = setup();
  const v = await svc.create({ start: false }, ctx());
  assert.match(v.name, /^[a-z]+-[a-z]+(-\d+)?$/);
});

test('a duplicate name is refused', async () => {
  const { svc } = setup();
  await svc.create({ name: 'dev' }, ctx());
  await assert.rejects(
    svc.create({ name: 'dev' }, ctx()),
    (e: Error & { code?: string }) => e.code === 'already_exists',
  );
});

test('a failing host step removes the row and the VM dir', async () => {
  const { svc, vms, paths } = setup({
    runner: (r) =>
      r
        .on('qemu-img', { code: 1, stderr: 'qemu-img: No space left on device' })
        .on('cp', { code: 1, stderr: 'cp: No space left on device' }),
  });
  await assert.rejects(
    svc.create({ name: 'dev' }, ctx()),
    (e: Error & { hint?: string }) =>
      /could not make the VM root disk/.test(e.message) && /No space left/.test(e.hint ?? ''),
  );
  assert.deepEqual(vms.list(), []);
  assert.deepEqual(readdirSync(paths.vmsDir), []);
});

test('-p: published ports go to the VMM as forwards, show in the view, and go with the VM', async () => {
  const { svc, driver } = setup();
  const port = await freeLoopbackPort();
  const view = await svc.create({ name: 'dev', publish: [`127.0.0.1:${port}:8080`, `${port}:53/udp`] }, ctx());
  const want = [`127.0.0.1:${port}:8080/tcp`, `127.0.0.1:${port}:53/udp`];
  assert.deepEqual(view.published?.map((p) => p.spec).sort(), want.sort());
  const net = driver.specs[0]?.net;
  assert.ok(net?.mode === 'user');
  assert.deepEqual(net.forwards?.map(formatPublication).sort(), want.sort());
  await svc.delete('dev', ctx());
  assert.deepEqual(svc.publisher.list(view.id), []);
});

test('-p: a port taken on the host, or published by another VM, is refused before anything is made', async () => {
  const { svc, vms, paths, driver } = setup();
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const port = (taken.address() as AddressInfo).port;
  try {
    await assert.rejects(
      svc.create({ name: 'dev', publish: [`${port}:80`] }, ctx()),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'precondition' &&
        e.message === `cannot publish 127.0.0.1:${port}/tcp: the port is taken on the host`,
    );
    await assert.rejects(svc.create({ name: 'dev', publish: ['0:80'] }, ctx()), /host port "0"/);
    assert.deepEqual(vms.list(), []);
    assert.deepEqual(readdirSync(paths.vmsDir), []);
    assert.equal(driver.specs.length, 0);
  } finally {
    taken.close();
  }
  const free = await freeLoopbackPort();
  await svc.create({ name: 'one', publish: [`${free}:80`], start: false }, ctx());
  await assert.rejects(
    svc.create({ name: 'two', publish: [`127.0.0.1:${free}:81`], start: false }, ctx()),
    /port 127\.0\.0\.1:\d+\/tcp is already published by VM "one"/,
  );
  assert.deepEqual(
    vms.list().map((v) => v.name),
    ['one'],
  );
});

test('the root disk falls back from qcow2 to a raw copy (root.raw) and records its plan', async () => {
  const { svc, driver, runner, vms, paths } = setup({
    runner: (r) =>
      r
        .on('qemu-img', { missing: true })
        .on((a) => a[0] === 'cp' && a[1] === '--reflink=always', { code: 1, stderr: 'cp: failed to clone' })
        .on((a) => a[0] === 'cp' && a[1] === '--sparse=always', {})
        .on((a) => a[0] === 'truncate' && a[1] === '-s', {}),
  });
  const v = await svc.create({ name: 'dev' }, ctx());
  assert.equal(v.disk_strategy, 'sparse-copy');
  const raw = join(paths.vmDir(v.id), 'root.raw');
  assert.deepEqual(driver.specs[0]?.disks[0], {
    id: 'root',
    path: raw,
    format: 'raw',
    readonly: false,
    serial: 'banger-root',
  });
  const { warm, ...vars } = vms.get(v.id)?.rootDisk?.vars ?? {};
  assert.deepEqual(
    { ...vms.get(v.id)?.rootDisk, vars },
    { strategy: 'sparse-copy', path: raw, vars: {} },
    'the plan is recorded',
  );
  assert.match(warm ?? '', /^cold: /, 'vm show says why the VM booted cold');
  assert.deepEqual(
    runner.calls.map((c) => c.argv[0]),
    ['qemu-img', 'cp', 'cp', 'truncate', 'mkfs.ext4', 'debugfs', 'debugfs'],
  );
  assert.ok(!runner.calls.some((c) => c.argv.at(-1)?.endsWith('root.qcow2') && c.argv[0] === 'cp'));
  await svc.delete('dev', ctx());
  assert.deepEqual(runner.callsTo('rm'), [['rm', '-f', raw]], "delete runs the plan's undo");
});

test('a VMM that declares no qcow2 never gets an overlay: its root disk is a raw copy', async () => {
  const { svc, driver, runner } = setup({
    runner: (r) => r.on((a) => a[0] === 'cp' && a[1] === '--reflink=always', {}).on('truncate', {}),
  });
  driver.capabilities = { ...QEMU_CAPABILITIES, diskFormats: ['raw'] };
  const v = await svc.create({ name: 'dev' }, ctx());
  assert.equal(v.disk_strategy, 'reflink');
  assert.deepEqual(runner.callsTo('qemu-img'), []);
  assert.equal(driver.specs[0]?.disks[0]?.format, 'raw');
});

test("start opens the recorded plan's path, and delete runs its undo with the recorded values (a dm snapshot)", async () => {
  const { svc, vms, driver, runner, paths } = setup({
    runner: (r) => r.on('dmsetup', {}).on((a) => a[0] === 'losetup' && a[1] === '-d', {}),
  });
  const v = await svc.create({ name: 'dev', start: false }, ctx());
  const dev = `/dev/mapper/banger-${v.id.slice(0, 12)}`;
  vms.update(v.id, {
    diskStrategy: 'dm-snapshot',
    rootDisk: { strategy: 'dm-snapshot', path: dev, vars: { base_loop: '/dev/loop7', cow_loop: '/dev/loop8' } },
  });
  await svc.start('dev', ctx());
  assert.deepEqual(
    driver.specs[0]?.disks.map((d) => [d.id, d.path, d.format]),
    [
      ['root', dev, 'raw'],
      ['work', join(paths.vmDir(v.id), 'work.ext4'), 'raw'],
      ['modules', '/k/modules.ext4', 'raw'],
    ],
  );
  const before = runner.calls.length;
  await svc.delete('dev', ctx());
  assert.deepEqual(
    runner.calls
      .slice(before)
      .map((c) => c.argv.join(' '))
      .filter((a) => !a.startsWith('ssh')),
    [
      `dmsetup remove banger-${v.id.slice(0, 12)}`,
      'losetup -d /dev/loop8',
      'losetup -d /dev/loop7',
      `rm -f ${join(paths.vmDir(v.id), 'root.cow')}`,
    ],
  );
  assert.equal(vms.get(v.id), undefined);
});

test('a VMM that exits during boot is cleaned up', async () => {
  const { svc, vms, driver } = setup({ probe: 'none' });
  driver.exitOnStart = true;
  await assert.rejects(
    svc.create({ name: 'dev' }, ctx()),
    (e: unknown) => e instanceof BootFailure && e.kind === 'exited',
  );
  assert.deepEqual(vms.list(), []);
});

test('an ssh timeout keeps the VM for inspection', async () => {
  const { svc, vms, driver } = setup({ probe: 'none', timeoutMs: 300 });
  await assert.rejects(
    svc.create({ name: 'dev' }, ctx()),
    (e: unknown) => e instanceof BootFailure && e.kind === 'ssh_timeout' && /vm logs dev/.test(e.hint ?? ''),
  );
  assert.equal(vms.byName('dev')?.state, 'running');
  assert.equal(driver.procs.size, 1);
});

test('cancelling create (client went away) removes everything', async () => {
  const { svc, vms, driver, paths } = setup({ probe: 'none', timeoutMs: 60_000 });
  const ac = new AbortController();
  const p = svc.create({ name: 'dev' }, ctx(ac.signal));
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(p, (e: Error & { code?: string }) => e.code === 'cancelled');
  assert.deepEqual(vms.list(), []);
  assert.equal(driver.procs.size, 0);
  assert.deepEqual(readdirSync(paths.vmsDir), []);
});

test('refs: name, id, unique prefix; ambiguity and absence are errors', async () => {
  const { svc } = setup();
  const a = await svc.create({ name: 'a' }, ctx());
  const b = await svc.create({ name: 'b' }, ctx());
  assert.equal(svc.resolve('a').id, a.id);
  assert.equal(svc.resolve(b.id).name, 'b');
  assert.equal(svc.resolve(b.id.slice(0, 10)).name, 'b');
  assert.throws(
    () => svc.resolve('zzz'),
    (e: Error & { code?: string }) => e.code === 'not_found',
  );
  assert.throws(
    () => svc.resolve(''),
    (e: Error & { code?: string }) => e.code === 'bad_request' || e.code === 'not_found',
  );
});

test('reconcile: a dead VMM is marked stopped, a live one is adopted, a half-created VM is removed', async () => {
  const { svc, vms, driver, paths } = setup();
  await svc.create({ name: 'live' }, ctx());
  const dead = await svc.create({ name: 'dead' }, ctx());
  const deadPid = vms.get(dead.id)?.handles?.pid as number;
  driver.procs.delete(deadPid);
  vms.insert({
    ...(vms.byName('live') as NonNullable<ReturnType<typeof vms.byName>>),
    id: 'half',
    name: 'half',
    state: 'creating',
    handles: undefined,
  });
  mkdirSync(paths.vmDir('half'));
  writeFileSync(join(paths.vmDir('half'), 'root.qcow2'), '');
  await svc.reconcile();
  assert.equal(vms.byName('live')?.state, 'running');
  assert.equal(vms.byName('dead')?.state, 'stopped');
  assert.equal(vms.byName('half'), undefined);
  assert.equal(existsSync(paths.vmDir('half')), false);
});

test('reconcile: a corrupt handles.json falls back to the store copy, the live VM is adopted, and vm show reports the file', async () => {
  const { svc, vms, driver, paths } = setup();
  const live = await svc.create({ name: 'live' }, ctx());
  const file = join(paths.vmDir(live.id), 'handles.json');
  writeFileSync(file, '{"pid": 10');
  await svc.reconcile();
  assert.equal(vms.byName('live')?.state, 'running');
  assert.equal(driver.procs.size, 1, 'its VMM was neither killed nor forgotten');
  const shown = await svc.show('live');
  assert.match((shown.problems ?? []).join('\n'), /handles\.json is not valid JSON.*using the copy in the store/);
  await svc.delete('live', ctx());
  assert.equal(driver.procs.size, 0, 'delete still finds the VMM through the store copy');
});

test('reconcile: a corrupt handles.json without a store copy never marks the VM stopped (its VMM may still run)', async () => {
  const { svc, vms, driver, paths } = setup();
  const live = await svc.create({ name: 'live' }, ctx());
  vms.update(live.id, { handles: undefined });
  const file = join(paths.vmDir(live.id), 'handles.json');
  writeFileSync(file, '{"pid": "soon"}\n');
  await svc.reconcile();
  assert.equal(vms.byName('live')?.state, 'error');
  assert.equal(existsSync(file), true, 'the file is kept for inspection');
  assert.equal(driver.procs.size, 1, 'nothing was killed blindly');
  const shown = await svc.show('live');
  assert.match(
    (shown.problems ?? []).join('\n'),
    /handles\.json .*pid.*no copy in the store: its VMM may still be running/,
  );
});

test('reconcile: an unreadable handles.json (not ENOENT) is a problem, not a missing file', async () => {
  const { svc, vms, paths } = setup();
  const live = await svc.create({ name: 'live' }, ctx());
  vms.update(live.id, { handles: undefined });
  const file = join(paths.vmDir(live.id), 'handles.json');
  rmSync(file);
  mkdirSync(file);
  await svc.reconcile();
  assert.equal(vms.byName('live')?.state, 'error');
  assert.match(((await svc.show('live')).problems ?? []).join('\n'), /cannot read .*handles\.json: EISDIR/);
});

test('a VMM that needs KVM or lacks a user-mode network is refused from what it declares, before anything is made', async () => {
  const { svc, driver, vms, runner } = setup();
  driver.kind = 'firecracker';
  driver.capabilities = FIRECRACKER_CAPABILITIES;
  await assert.rejects(
    svc.create({}, ctx()),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'precondition' &&
      /^vmm = "firecracker" needs hardware virtualization \(KVM\), and this host has none \(test\)$/.test(e.message),
  );
  driver.capabilities = { ...FIRECRACKER_CAPABILITIES, needsKvm: false };
  await assert.rejects(
    svc.create({}, ctx()),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'precondition' && /needs bridge networking/.test(e.message) && /vmm = "auto"/.test(e.hint ?? ''),
  );
  assert.deepEqual(vms.list(), []);
  assert.equal(runner.calls.length, 0);
});

test('auto_stop_stale_after stops only VMs untouched for longer than the limit', async () => {
  const { svc, vms } = setup();
  await svc.create({ name: 'old' }, ctx());
  await svc.create({ name: 'fresh' }, ctx());
  const now = Date.now();
  vms.touch(vms.byName('old')?.id as string, new Date(now - 3_600_000));
  const stopped = await svc.stopStale(600_000, now);
  assert.deepEqual(stopped, ['old']);
  assert.equal(vms.byName('old')?.state, 'stopped');
  assert.equal(vms.byName('fresh')?.state, 'running');
});

test('stop: ssh `sync; poweroff`, then the VMM exits by itself within the 10 s grace; no signal is needed', async () => {
  for (const poweroffMs of [1500, 9_000]) {
    const { svc, vms, driver, clock, poweroffs } = setup();
    driver.poweroffMs = poweroffMs;
    const v = await svc.create({ name: 'dev' }, ctx());
    const start = clock.now();
    const stopped = await svc.stop('dev', ctx());
    assert.equal(stopped.state, 'stopped');
    assert.equal(poweroffs.length, 1, 'one poweroff over ssh');
    assert.match(poweroffs[0]?.command ?? '', /^sync; .*\bpoweroff\b/, 'the guest syncs, then powers off');
    assert.equal(`127.0.0.1:${poweroffs[0]?.port}`, v.ssh, 'sent to this VM');
    assert.deepEqual(driver.signals, [], `a guest that powers off in ${poweroffMs} ms gets no signal`);
    assert.ok(clock.now() - start >= poweroffMs, 'the stop waited for the VMM to exit');
    assert.equal(driver.procs.size, 0);
    assert.equal(vms.byName('dev')?.handles, undefined);
  }
});

test('stop: a guest that ignores poweroff is killed (SIGKILL) only once the 10 s grace has passed', async () => {
  const { svc, driver, poweroffs } = setup();
  driver.poweroffMs = undefined;
  const v = await svc.create({ name: 'dev' }, ctx());
  await svc.stop('dev', ctx());
  const [sig] = driver.signals;
  assert.equal(driver.signals.length, 1);
  assert.equal(sig?.pid, v.pid);
  assert.equal(sig?.signal, 'SIGKILL');
  const poweroffAt = poweroffs[0]?.at ?? NaN;
  assert.ok(
    (sig?.at ?? 0) - poweroffAt >= 10_000,
    `killed ${(sig?.at ?? 0) - poweroffAt} ms after the poweroff request; SPEC §4 gives the guest 10 s`,
  );
  assert.equal(driver.procs.size, 0);
});

test('kill --signal: the VMM gets that signal at once, with no guest shutdown', async () => {
  const { svc, driver, poweroffs } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  const killed = await svc.kill('dev', 'SIGTERM');
  assert.equal(killed.state, 'stopped');
  assert.deepEqual(
    driver.signals.map((s) => [s.pid, s.signal]),
    [[v.pid, 'SIGTERM']],
  );
  assert.deepEqual(poweroffs, []);
});

/** Creates a running VM and rewrites its row as a daemon that died at the wrong moment would have left it. */
async function leftBehind(
  s: ReturnType<typeof setup>,
  name: string,
  patch: Parameters<VmRepo['update']>[1] & { state?: VmState },
): Promise<{ id: string; pid: number; ssh: string | null }> {
  const v = await s.svc.create({ name }, ctx());
  // Straight to the store, past the transition table: this is the daemon that died, not the service.
  const { state, ...rest } = patch;
  s.vms.setState(v.id, state ?? 'running', rest);
  return { id: v.id, pid: v.pid as number, ssh: v.ssh };
}

test('reconcile: a start left in starting is adopted (promoted to running) when its VMM lives; starting or stopping rows whose VMM died are cleaned up', async () => {
  const s = setup();
  const starting = await leftBehind(s, 'starting-live', { state: 'starting' });
  const deadStarting = await leftBehind(s, 'starting-dead', { state: 'starting' });
  const deadStopping = await leftBehind(s, 'stopping-dead', { state: 'stopping' });
  s.driver.procs.delete(deadStarting.pid);
  s.driver.procs.delete(deadStopping.pid);
  await s.svc.reconcile();
  for (const live of [starting]) {
    const v = await s.svc.show(live.id);
    assert.equal(v.state, 'running', v.name);
    assert.equal(v.pid, live.pid, v.name);
    assert.equal(v.ssh, live.ssh, v.name);
  }
  for (const dead of [deadStarting, deadStopping]) {
    const row = s.vms.get(dead.id);
    assert.equal(row?.state, 'stopped', row?.name);
    assert.equal(row?.handles, undefined);
    assert.equal(existsSync(join(s.paths.vmDir(dead.id), 'handles.json')), false, 'runtime handles removed');
  }
  assert.deepEqual(s.driver.signals, [], 'reconcile signals nothing');
});

test('reconcile: a VM known only through handles.json (its row lost the pid) is adopted with its pid and ssh port', async () => {
  const s = setup();
  const running = await leftBehind(s, 'lost-running', { handles: undefined, sshPort: undefined });
  const starting = await leftBehind(s, 'lost-starting', { state: 'starting', handles: undefined, sshPort: undefined });
  await s.svc.reconcile();
  for (const vm of [running, starting]) {
    const v = await s.svc.show(vm.id);
    assert.equal(v.state, 'running', v.name);
    assert.equal(v.pid, vm.pid, `${v.name}: the pid comes back from handles.json`);
    assert.equal(v.ssh, vm.ssh, `${v.name}: so does the ssh port`);
  }
  assert.equal(s.svc.sshInfo('lost-running').port, Number(running.ssh?.split(':')[1]));
});

test('reconcile: a reused pid with another start time is not adopted, and that process is left alone', async () => {
  const s = setup();
  const vm = await leftBehind(s, 'reused', {});
  const impostor = { startTime: 99_999, sshPort: 1, host: '127.0.0.1' };
  s.driver.procs.set(vm.pid, impostor);
  await s.svc.reconcile();
  assert.equal(s.vms.get(vm.id)?.state, 'stopped');
  assert.equal(s.vms.get(vm.id)?.handles, undefined);
  await s.svc.delete('reused', ctx());
  assert.deepEqual(s.driver.signals, [], 'nothing was sent to the process that now has the pid');
  assert.equal(s.driver.procs.get(vm.pid), impostor);
});

test('start: an ssh port taken before the VMM binds it is replaced by another, up to three tries', async () => {
  const ok = setup();
  ok.driver.portTaken = 2;
  const v = await ok.svc.create({ name: 'dev' }, ctx());
  assert.equal(v.state, 'running');
  assert.equal(ok.driver.specs.length, 3);
  const net = ok.driver.specs[2]?.net;
  assert.equal(v.ssh, `127.0.0.1:${net?.mode === 'user' ? net.sshPort : 'none'}`);

  const bad = setup();
  bad.driver.portTaken = 3;
  await assert.rejects(bad.svc.create({ name: 'dev' }, ctx()), (e: unknown) => e instanceof PortInUse);
  assert.equal(bad.driver.specs.length, 3);
  assert.deepEqual(bad.vms.list(), [], 'no VM is left behind');
  assert.deepEqual(readdirSync(bad.paths.vmsDir), []);
});

test('a daemon killed between VMM spawn and its control socket: the next start kills that VMM and removes the VM', async () => {
  const { svc, vms, driver, paths, restart } = setup();
  driver.hangAfterSpawn = true;
  void svc.create({ name: 'dev' }, ctx());
  const deadline = Date.now() + 5000;
  while (driver.procs.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(driver.procs.size, 1, 'the VMM was spawned');
  const id = vms.byName('dev')?.id as string;
  driver.hangAfterSpawn = false;
  await restart().reconcile();
  assert.equal(driver.procs.size, 0, 'no VMM is left running');
  assert.equal(vms.byName('dev'), undefined, 'the half-made VM is gone, so a retry can reuse the name');
  assert.equal(existsSync(paths.vmDir(id)), false);
  await restart().create({ name: 'dev' }, ctx());
  assert.equal(vms.byName('dev')?.state, 'running');
});

test('reconcile: an asked-for stop ends stopped with its VMM killed and its disks kept', async () => {
  for (const state of ['stopping'] as const) {
    const { svc, vms, driver, paths, restart } = setup();
    const v = await svc.create({ name: 'dev' }, ctx());
    const pid = vms.get(v.id)?.handles?.pid as number;
    vms.setState(v.id, state);
    await restart().reconcile();
    assert.equal(vms.get(v.id)?.state, 'stopped', state);
    assert.equal(vms.get(v.id)?.handles, undefined, state);
    assert.deepEqual(driver.killed, [pid], state);
    assert.ok(
      existsSync(join(paths.vmDir(v.id), 'root.qcow2')) || existsSync(paths.vmDir(v.id)),
      `${state}: disks kept`,
    );
  }
});

test('reconcile: a create interrupted during its first boot is removed and its recorded VMM killed', async () => {
  const { svc, vms, driver, paths, restart } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  const pid = vms.get(v.id)?.handles?.pid as number;
  vms.setState(v.id, 'creating');
  await restart().reconcile();
  assert.equal(vms.get(v.id), undefined);
  assert.deepEqual(driver.killed, [pid]);
  assert.equal(existsSync(paths.vmDir(v.id)), false);
});

test('reconcile: a VMM whose handles were never recorded is found by its control socket on its command line', async (t) => {
  const { vms, driver, paths, restart } = setup();
  vms.insert(vmRow({ id: 'c'.repeat(32), memoryMib: 256, diskBytes: 1 << 30, overlayBytes: 1 << 30 }));
  mkdirSync(paths.vmDir('c'.repeat(32)), { recursive: true });
  const sock = paths.controlSocket('c'.repeat(32), '.qmp');
  const runner = new NodeRunner();
  const log = join(paths.vmDir('c'.repeat(32)), 'vmm.log');
  // Stand-ins: one carries the VMM's QMP argument, one only mentions the VM's console log (like `tail -f`).
  const vmm = await runner.spawnDetached(
    [process.execPath, '-e', 'setTimeout(() => {}, 60000)', '--', '-qmp', `unix:${sock},server=on,wait=off`],
    { logFile: log },
  );
  const bystander = await runner.spawnDetached(
    [process.execPath, '-e', 'setTimeout(() => {}, 60000)', '--', join(paths.vmDir('c'.repeat(32)), 'console.log')],
    { logFile: log },
  );
  t.after(() => [vmm, bystander].forEach((p) => signalProcess(p, 'SIGKILL')));
  await restart().reconcile();
  assert.deepEqual(driver.killed, [vmm]);
  assert.equal(vms.byName('dev'), undefined);
});

test('vm logs reads only a bounded tail of a large console log', async () => {
  const { svc, paths } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  const file = join(paths.vmDir(v.id), 'console.log');
  writeFileSync(file, Buffer.concat([Buffer.alloc(12 << 20, 'a'), Buffer.from('\nlast line\n')]));
  const r = await svc.logs('dev');
  assert.ok(r.text.length <= 1 << 20, `${r.text.length} bytes returned`);
  assert.ok(r.text.endsWith('\nlast line\n'));
  assert.equal(r.size, (12 << 20) + 11);
  const small = await svc.logs('dev', 5);
  assert.equal(small.text, 'line\n');
});

test('the periodic check cuts back the console logs of running VMs only', async () => {
  const { svc, vms, paths } = setup();
  const run = await svc.create({ name: 'run' }, ctx());
  const off = await svc.create({ name: 'off', start: false }, ctx());
  for (const v of [run, off]) writeFileSync(join(paths.vmDir(v.id), 'console.log'), Buffer.alloc(2048, 'z'));
  assert.deepEqual(await svc.capConsoles(1024), ['run']);
  assert.equal(readFileSync(join(paths.vmDir(run.id), 'console.log')).length, 0);
  assert.equal(readFileSync(join(paths.vmDir(off.id), 'console.log')).length, 2048);
  assert.equal(vms.byName('off')?.state, 'stopped');
});

test('VMs made before root-disk plans were recorded (a raw copy named root.qcow2, no plan, handles.json with qmpSocket) are upgraded at startup, adopted, started and deleted', async () => {
  const s = setup();
  const legacy = (id: string, name: string, state: VmState, diskStrategy: string): VmRow =>
    vmRow({
      id: id.repeat(32),
      name,
      state,
      memoryMib: 256,
      diskBytes: 1 << 30,
      overlayBytes: 1 << 30,
      diskStrategy,
      createdAt: 'then',
      updatedAt: 'then',
    });
  const rows = [
    legacy('a', 'old-raw', 'stopped', 'sparse-copy'),
    legacy('b', 'old-overlay', 'stopped', 'qcow2-overlay'),
    legacy('c', 'old-running', 'running', 'reflink'),
    // Renamed by an upgrade that died before recording the plan.
    legacy('d', 'half-upgraded', 'stopped', 'reflink'),
  ];
  for (const r of rows) {
    s.vms.insert(r);
    mkdirSync(s.paths.vmDir(r.id));
    writeFileSync(join(s.paths.vmDir(r.id), r.name === 'half-upgraded' ? 'root.raw' : 'root.qcow2'), r.name);
    writeFileSync(join(s.paths.vmDir(r.id), 'work.ext4'), '');
  }
  // The running one: its VMM lives, its handles (written by the old daemon) say qmpSocket.
  const running = rows[2] as VmRow;
  const sock = s.paths.controlSocket(running.id, '.qmp');
  s.driver.procs.set(4242, { startTime: 77, sshPort: 40022, host: '127.0.0.1' });
  writeFileSync(
    join(s.paths.vmDir(running.id), 'handles.json'),
    JSON.stringify({ pid: 4242, startTime: 77, qmpSocket: sock, sshPort: 40022 }),
  );
  s.vms.setState(running.id, 'running', { sshPort: 40022 });

  const svc = s.restart();
  await svc.reconcile();
  await svc.reconcile(); // twice: nothing changes the second time
  const dir = (name: string): string => s.paths.vmDir(s.vms.byName(name)?.id as string);
  assert.deepEqual(s.vms.byName('old-raw')?.rootDisk, {
    strategy: 'sparse-copy',
    path: join(dir('old-raw'), 'root.raw'),
    vars: {},
  });
  assert.equal(readFileSync(join(dir('old-raw'), 'root.raw'), 'utf8'), 'old-raw', 'the same file, renamed');
  assert.equal(existsSync(join(dir('old-raw'), 'root.qcow2')), false);
  assert.deepEqual(s.vms.byName('old-overlay')?.rootDisk, {
    strategy: 'qcow2-overlay',
    path: join(dir('old-overlay'), 'root.qcow2'),
    vars: {},
  });
  assert.equal(s.vms.byName('half-upgraded')?.rootDisk?.path, join(dir('half-upgraded'), 'root.raw'));
  assert.equal(s.vms.byName('old-running')?.rootDisk?.path, join(dir('old-running'), 'root.raw'));
  const adopted = await svc.show('old-running');
  assert.equal(adopted.state, 'running');
  assert.equal(adopted.pid, 4242);
  assert.deepEqual(s.vms.byName('old-running')?.handles, {
    pid: 4242,
    startTime: 77,
    controlSocket: sock,
    sshPort: 40022,
  });

  for (const name of ['old-raw', 'old-overlay', 'half-upgraded']) await svc.start(name, ctx());
  assert.deepEqual(
    s.driver.specs.map((sp) => [sp.name, sp.disks[0]?.path, sp.disks[0]?.format]),
    [
      ['old-raw', join(dir('old-raw'), 'root.raw'), 'raw'],
      ['old-overlay', join(dir('old-overlay'), 'root.qcow2'), 'qcow2'],
      ['half-upgraded', join(dir('half-upgraded'), 'root.raw'), 'raw'],
    ],
  );
  for (const r of rows) await svc.delete(r.name, ctx());
  assert.deepEqual(s.vms.list(), []);
  assert.deepEqual(readdirSync(s.paths.vmsDir), []);
  assert.equal(s.driver.procs.size, 0, 'the adopted VMM was stopped by delete');
});

test('an image with the agent and without sshd: start waits for the agent only; vm health and vm ports answer from it', async () => {
  const { svc, agents, probes } = setup({
    agent: {
      ports: [
        { protocol: 'tcp', family: 4, address: '0.0.0.0', port: 8080, uid: 0 },
        { protocol: 'tcp', family: 6, address: '::', port: 22, uid: 0 },
        { protocol: 'udp', family: 4, address: '127.0.0.1', port: 53, uid: 101 },
      ],
    },
    hasSshd: false,
    probe: 'none',
  });
  const v = await svc.create({ name: 'dev' }, ctx());
  assert.equal(v.state, 'running');
  assert.equal(probes(), 0, 'no ssh wait for an image without sshd');
  assert.equal(agents.length, 1, 'the boot waited for the agent');
  const h = await svc.health('dev');
  assert.deepEqual(
    { ...h, uptime_s: 0 },
    {
      name: 'dev',
      healthy: true,
      agent: 'fake-agent',
      protocol_version: PROTOCOL_VERSION,
      uptime_s: 0,
      sessions: 0,
    },
  );
  assert.equal(h.uptime_s, 1.234);
  const p = await svc.ports('dev');
  assert.deepEqual(p, {
    name: 'dev',
    truncated: false,
    published: [],
    ports: [
      { protocol: 'tcp', address: '::', port: 22, uid: 0, endpoint: v.ssh },
      { protocol: 'tcp', address: '0.0.0.0', port: 8080, uid: 0, endpoint: null },
      { protocol: 'udp', address: '127.0.0.1', port: 53, uid: 101, endpoint: null },
    ],
  });
});

test('an image with the agent and sshd: start waits for the agent, then for ssh', async () => {
  const { svc, agents, probes } = setup({ agent: {}, hasSshd: true });
  await svc.create({ name: 'dev' }, ctx());
  // Health at boot, then (once sshd is up) the pooled connection that reads the guest's host key.
  assert.equal(agents.length, 2);
  assert.ok(probes() >= 1, 'ssh was waited for');
});

test('a guest agent that never answers at boot fails the start with an error naming the VM; the VMM is stopped', async () => {
  const { svc, vms, driver } = setup({ agent: { silent: ['hello'] }, hasSshd: false, timeoutMs: 200 });
  await assert.rejects(svc.create({ name: 'dev' }, ctx()), (e: BootFailure) => {
    assert.equal(e.kind, 'stuck');
    assert.match(e.message, /the guest agent of VM "dev" did not answer hello within 200 ms/);
    assert.match(e.hint ?? '', /banger vm logs dev/);
    return true;
  });
  assert.equal(vms.byName('dev')?.state, 'error', 'kept for inspection');
  assert.equal(driver.procs.size, 0);
});

test('stop: the guest agent powers the guest off (no ssh, no signal); the connection is closed', async () => {
  const { svc, driver, poweroffs, agents } = setup({ agent: {}, hasSshd: true });
  await svc.create({ name: 'dev' }, ctx());
  await svc.health('dev');
  const stopped = await svc.stop('dev', ctx());
  assert.equal(stopped.state, 'stopped');
  assert.deepEqual(
    agents.flatMap((a) => a.shutdowns),
    ['poweroff'],
  );
  assert.deepEqual(poweroffs, [], 'no ssh poweroff');
  assert.deepEqual(driver.signals, [], 'the VMM exited by itself');
  assert.equal(driver.procs.size, 0);
});

test('stop: a v3 agent (sync + reboot, journals left to replay) is not asked when sshd can power off in order', async () => {
  const { svc, driver, poweroffs, agents } = setup({ agent: {}, assetsVersion: 3, hasSshd: true });
  await svc.create({ name: 'dev' }, ctx());
  await svc.stop('dev', ctx());
  assert.deepEqual(
    agents.flatMap((a) => a.shutdowns),
    [],
  );
  assert.equal(poweroffs.length, 1, 'ssh poweroff');
  assert.deepEqual(driver.signals, []);
  // Without sshd the v3 agent is the only graceful way.
  const noSshd = setup({ agent: {}, assetsVersion: 3, hasSshd: false });
  await noSshd.svc.create({ name: 'dev' }, ctx());
  await noSshd.svc.stop('dev', ctx());
  assert.deepEqual(
    noSshd.agents.flatMap((a) => a.shutdowns),
    ['poweroff'],
  );
  assert.deepEqual(noSshd.poweroffs, []);
});

test('stop: an agent that does not answer shutdown falls back to ssh poweroff', async () => {
  const { svc, driver, poweroffs, agents } = setup({ agent: { silent: ['shutdown'], onShutdown: () => undefined } });
  await svc.create({ name: 'dev' }, ctx());
  await svc.stop('dev', ctx());
  assert.equal(agents.flatMap((a) => a.shutdowns).length, 1, 'the agent was asked first');
  assert.equal(poweroffs.length, 1, 'then ssh');
  assert.deepEqual(driver.signals, []);
});

test('vm health and vm ports: a stopped VM, or one whose image predates the agent, is refused saying what to do', async () => {
  const old = setup();
  await old.svc.create({ name: 'dev' }, ctx());
  await assert.rejects(old.svc.health('dev'), (e: Error & { code: string; hint?: string }) => {
    assert.equal(e.code, 'precondition');
    assert.match(
      e.message,
      /image "debian-bookworm" of VM "dev" has guest assets v1, older than the guest agent \(v3\)/,
    );
    assert.match(e.hint ?? '', /banger image refresh debian-bookworm/);
    return true;
  });
  const cur = setup({ agent: {} });
  await cur.svc.create({ name: 'dev', start: false }, ctx());
  await assert.rejects(cur.svc.ports('dev'), /VM "dev" is stopped; vm ports needs it running/);
});

test('image refresh vs vm create: a create past the refresh\'s last "no VM uses it" check makes its root disk only after the swap', async () => {
  // The interleaving, step by step: the refresh passes its last check (no VM yet) and stops before the swap;
  // a create then makes its row and wants its root disk. It must wait for the swap (its overlay is then over
  // the new rootfs), not overlay the file about to be replaced.
  let baseInode: number | undefined;
  const s = setup({
    runner: (r) =>
      r.on(
        (a) => a[0] === 'qemu-img' && a[1] === 'create',
        () => {
          baseInode = statSync(s.image.rootfsPath).ino;
          return {};
        },
      ),
  });
  writeFileSync(s.image.rootfsPath, 'old rootfs');
  writeFileSync(join(s.image.dir, 'manifest.json'), '{}');
  const tools = new FakeRunner()
    .on('cp', (argv) => {
      copyFileSync(argv.at(-2) as string, argv.at(-1) as string);
      return {};
    })
    .on('e2fsck', {})
    .on('debugfs', {});
  let atSwap!: () => void;
  const reachedSwap = new Promise<void>((r) => (atSwap = r));
  let openSwap!: () => void;
  const swapGate = new Promise<void>((r) => (openSwap = r));
  const refresh = refreshImage(
    {
      paths: s.paths,
      repo: s.images,
      runner: tools,
      log: nullLogger,
      usedBy: (id) => s.vms.namesByImage(id),
      leases: s.leases,
      beforeSwap: () => {
        atSwap();
        return swapGate;
      },
    },
    s.image,
    ctx(),
  );
  await reachedSwap;
  const create = s.svc.create({ name: 'late', start: false }, ctx());
  // Bounded: until the create either made its root disk or waits for the lease.
  for (let i = 0; i < 10_000 && baseInode === undefined && s.leases.waiting(s.image.id) === 0; i++)
    await new Promise((r) => setImmediate(r));
  assert.equal(baseInode, undefined, 'no root disk is made from the rootfs while its swap is pending');
  openSwap();
  const refreshed = await refresh;
  assert.ok(refreshed.assetsVersion > s.image.assetsVersion);
  await create;
  assert.equal(baseInode, statSync(s.image.rootfsPath).ino, 'the root disk was made over the swapped rootfs');
  tools.assertNoUnexpected();
});

/** Taps and NAT rules on the pretend host, as names and guest sources. */
function hostState(h: FakeNetHost): { taps: string[]; nat: string[] } {
  return {
    taps: [...h.links].filter(([, l]) => l.kind === 'tap').map(([n]) => n),
    nat: h.rules.map((r) => r[r.indexOf('-s') + 1] ?? '?'),
  };
}

test('bridge mode: create gives each VM its own IP, tap, name and ssh at IP:22; --nat one rule; stop/start keeps the IP; delete frees all', async () => {
  const { svc, vms, driver, netHost, records, paths } = setup({ bridge: {} });
  const a = await svc.create({ name: 'alpha', nat: true }, ctx());
  const b = await svc.create({ name: 'beta' }, ctx());
  assert.equal(a.network_mode, 'bridge');
  assert.equal(a.ip, '172.16.0.2');
  assert.equal(b.ip, '172.16.0.3');
  assert.equal(a.ssh, '172.16.0.2:22');
  const tapA = `tap-${a.id.slice(0, 11)}`;
  const tapB = `tap-${b.id.slice(0, 11)}`;
  assert.deepEqual(driver.specs[0]?.net, { mode: 'bridge', tap: tapA, mac: driver.specs[0]?.net.mac });
  const args = driver.specs[0]?.cmdline.split(' ') ?? [];
  assert.ok(args.includes('banger.ip=172.16.0.2/24') && args.includes('banger.gw=172.16.0.1'), args.join(' '));
  assert.ok(!args.some((x) => x.startsWith('banger.dns=')), 'nothing answers DNS on the bridge: no banger.dns');
  assert.deepEqual(hostState(netHost), { taps: [tapA, tapB], nat: ['172.16.0.2/32'] });
  assert.deepEqual(records.entries(), [
    ['alpha', '172.16.0.2'],
    ['beta', '172.16.0.3'],
  ]);
  assert.deepEqual(
    { host: svc.sshInfo('alpha').host, port: svc.sshInfo('alpha').port },
    { host: '172.16.0.2', port: 22 },
  );
  const sshConfig = readFileSync(paths.sshConfigFile, 'utf8');
  assert.match(sshConfig, /Host alpha\.vm\n {2}HostName 172\.16\.0\.2\n {2}Port 22\n/);

  await svc.stop('alpha', ctx());
  assert.equal(vms.byName('beta')?.state, 'running', 'stopping alpha powered off only alpha');
  assert.deepEqual(hostState(netHost), { taps: [tapB], nat: [] });
  assert.deepEqual(records.entries(), [['beta', '172.16.0.3']]);
  assert.equal((await svc.show('alpha')).ip, '172.16.0.2', 'a stopped VM keeps its IP');
  const again = await svc.start('alpha', ctx());
  assert.equal(again.ip, '172.16.0.2');
  assert.deepEqual(hostState(netHost), { taps: [tapB, tapA], nat: ['172.16.0.2/32'] });

  await svc.delete('alpha', ctx());
  await svc.delete('beta', ctx());
  assert.deepEqual(hostState(netHost), { taps: [], nat: [] });
  assert.deepEqual(records.entries(), []);
  const c = await svc.create({ name: 'gamma' }, ctx());
  assert.equal(c.ip, '172.16.0.2', 'deleted VMs gave their addresses back');
});

test('bridge mode: the guest gets banger.dns = bridge IP only when dns_listen is the bridge IP port 53', async () => {
  const { svc, driver } = setup({ bridge: { dnsListen: '172.16.0.1:53' } });
  await svc.create({ name: 'dev' }, ctx());
  assert.ok(driver.specs[0]?.cmdline.split(' ').includes('banger.dns=172.16.0.1'));
});

test('bridge mode: a failed host step or VMM start leaves no tap, rule, name, lease or row behind', async () => {
  const s = setup({ bridge: {} });
  s.netHost.failOn = 'master';
  await assert.rejects(s.svc.create({ name: 'dev', nat: true }, ctx()), /master br-fc/);
  assert.deepEqual(s.vms.list(), []);
  assert.deepEqual(hostState(s.netHost), { taps: [], nat: [] });

  s.driver.exitOnStart = true;
  await assert.rejects(s.svc.create({ name: 'dev', nat: true }, ctx()));
  assert.deepEqual(s.vms.list(), []);
  assert.deepEqual(hostState(s.netHost), { taps: [], nat: [] });
  assert.deepEqual(s.records.entries(), []);
  s.driver.exitOnStart = false;
  assert.equal((await s.svc.create({ name: 'dev' }, ctx())).ip, '172.16.0.2', 'the failed creates hold no address');
});

test('bridge mode: a failed start of an existing VM takes its tap down again; the IP stays', async () => {
  const s = setup({ bridge: {} });
  await s.svc.create({ name: 'dev', nat: true, start: false }, ctx());
  assert.equal((await s.svc.show('dev')).ip, '172.16.0.2', 'the IP is allocated at create');
  s.driver.exitOnStart = true;
  await assert.rejects(s.svc.start('dev', ctx()));
  assert.deepEqual(hostState(s.netHost), { taps: [], nat: [] });
  assert.deepEqual(s.records.entries(), []);
  assert.equal((await s.svc.show('dev')).ip, '172.16.0.2');
});

test('bridge mode: daemon restart rebuilds the names of running VMs and sweeps taps and rules of VMs that are gone', async () => {
  const s = setup({ bridge: {} });
  await s.svc.create({ name: 'dev', nat: true }, ctx());
  s.records.replaceAll([]);
  const gone = 'f'.repeat(32);
  s.netHost.links.set('tap-fffffffffff', { kind: 'tap', alias: `banger:${gone}`, up: true, master: 'br-fc' });
  s.netHost.rules.push(['POSTROUTING', '-s', '172.16.0.9/32', '-m', 'comment', '--comment', `banger:${gone}`]);
  await s.restart().reconcile();
  assert.deepEqual(s.records.entries(), [['dev', '172.16.0.2']]);
  assert.deepEqual(hostState(s.netHost), {
    taps: [`tap-${s.vms.byName('dev')?.id.slice(0, 11)}`],
    nat: ['172.16.0.2/32'],
  });
});

test('user mode: no IP, no host networking', async () => {
  const { svc, netHost } = setup();
  const v = await svc.create({ name: 'dev', nat: true }, ctx());
  assert.equal(v.ip, null);
  assert.equal(v.network_mode, 'user');
  assert.deepEqual(netHost.commands(), []);
});

test('bridge mode with a VMM that declares no bridge network is refused before anything is made', async () => {
  const { svc, driver, vms, netHost } = setup({ bridge: {} });
  driver.capabilities = { ...QEMU_CAPABILITIES, networks: QEMU_CAPABILITIES.networks.filter((n) => n.mode === 'user') };
  await assert.rejects(
    svc.create({ name: 'dev' }, ctx()),
    (e: Error & { code?: string }) =>
      e.code === 'precondition' &&
      /^vmm = "qemu" cannot attach a VM to a bridge \(network_mode = "bridge"\)$/.test(e.message),
  );
  assert.deepEqual(vms.list(), []);
  assert.deepEqual(netHost.commands(), []);
});

test('boot spans (issue 16): create records each host step of the boot on the row; a start replaces them; show returns them', async () => {
  const { svc, vms } = setup({ agent: {}, hasSshd: true });
  const created = await svc.create({ name: 'dev' }, ctx());
  const host = (v: { boot: { spans: { side: string; name: string }[] } | null }): string[] =>
    (v.boot?.spans ?? []).filter((s) => s.side === 'host').map((s) => s.name);
  assert.deepEqual(host(created), [
    'image',
    'kernel',
    'root disk',
    'work disk',
    'network',
    'spawn',
    'agent ready',
    'ssh ready',
  ]);
  assert.ok(created.boot && created.boot.total_ms >= 0);
  assert.deepEqual((await svc.show('dev')).boot, created.boot, 'kept on the row');
  await svc.stop('dev', ctx());
  assert.deepEqual((await svc.show('dev')).boot, created.boot, 'a stop keeps the last boot');
  const started = await svc.start('dev', ctx());
  assert.deepEqual(host(started), ['network', 'spawn', 'agent ready', 'ssh ready'], 'a start has no disk steps');
  assert.deepEqual(vms.byName('dev')?.bootTimings, started.boot);
});

test('pause/resume: the VMM stops and restarts the vCPUs; only running pauses, only paused resumes; list shows paused', async () => {
  const { svc, vms, driver } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  const paused = await svc.pauser.pause('dev');
  assert.equal(paused.state, 'paused');
  assert.equal(vms.byName('dev')?.state, 'paused');
  assert.deepEqual(
    svc.list().map((x) => [x.name, x.state]),
    [['dev', 'paused']],
  );
  assert.deepEqual(driver.runCalls, [`pause ${v.pid}`]);
  const refused = (re: RegExp, hint: RegExp) => (e: Error & { code?: string; hint?: string }) =>
    e.code === 'precondition' && re.test(e.message) && hint.test(e.hint ?? '');
  await assert.rejects(svc.pauser.pause('dev'), refused(/is paused; only a running VM/, /banger vm resume dev/));
  assert.throws(() => svc.sshInfo('dev'), refused(/is paused; ssh needs it running/, /banger vm resume dev/));
  await assert.rejects(svc.start('dev', ctx()), refused(/is paused/, /banger vm resume dev/));
  const stats = await svc.stats('dev');
  assert.equal(stats.state, 'paused');
  assert.equal(stats.pid, v.pid, 'a paused VM is live: its VMM process is read');
  assert.equal(stats.guest_uptime_s, null, 'the frozen guest is not asked');
  const resumed = await svc.pauser.resume('dev');
  assert.equal(resumed.state, 'running');
  assert.deepEqual(driver.runCalls, [`pause ${v.pid}`, `resume ${v.pid}`]);
  await assert.rejects(svc.pauser.resume('dev'), refused(/is running; only a paused VM can be resumed/, /^$/));
  await svc.stop('dev', ctx());
  await assert.rejects(svc.pauser.pause('dev'), refused(/is stopped; only a running VM can be paused/, /^$/));
  await assert.rejects(svc.pauser.resume('dev'), refused(/is stopped; only a paused VM/, /banger vm start dev/));
  assert.equal(driver.runCalls.length, 2, 'refused moves never reach the VMM');
});

test('pause: a paused VM is never auto-stopped (auto_stop_stale_after) nor pruned', async () => {
  const { svc, vms, driver } = setup();
  await svc.create({ name: 'parked' }, ctx());
  await svc.create({ name: 'old' }, ctx());
  await svc.pauser.pause('parked');
  const now = Date.now();
  for (const n of ['parked', 'old']) vms.touch(vms.byName(n)?.id as string, new Date(now - 3_600_000));
  assert.deepEqual(await svc.stopStale(600_000, now), ['old']);
  assert.equal(vms.byName('parked')?.state, 'paused');
  assert.deepEqual((await svc.prune(ctx())).deleted, ['old']);
  assert.equal(vms.byName('parked')?.state, 'paused');
  assert.equal(driver.procs.size, 1, 'its VMM lives');
});

test('stop of a paused VM: the VMM resumes it first, then the guest powers off in order (no grace wait, no signal)', async () => {
  const { svc, driver, clock, poweroffs } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  await svc.pauser.pause('dev');
  const start = clock.now();
  const stopped = await svc.stop('dev', ctx());
  assert.equal(stopped.state, 'stopped');
  assert.deepEqual(driver.runCalls, [`pause ${v.pid}`, `resume ${v.pid}`]);
  assert.equal(poweroffs.length, 1);
  assert.deepEqual(driver.signals, [], 'the resumed guest powered off by itself');
  assert.ok(clock.now() - start < 10_000, 'no wait for a frozen guest');
});

test('stop of a paused VM whose VMM refuses to resume: killed at once, without asking the frozen guest', async () => {
  const { svc, driver, clock, poweroffs } = setup();
  const v = await svc.create({ name: 'dev' }, ctx());
  await svc.pauser.pause('dev');
  driver.failResume = true;
  const start = clock.now();
  assert.equal((await svc.stop('dev', ctx())).state, 'stopped');
  assert.deepEqual(poweroffs, [], 'no poweroff sent to a guest that cannot run');
  assert.deepEqual(driver.signals, [{ pid: v.pid, signal: 'SIGKILL', at: start }]);
  assert.equal(driver.procs.size, 0);
});

test('resume sets the guest clock to the host clock through the agent; exec and health on a paused VM name vm resume', async () => {
  const ran: string[][] = [];
  const { svc } = setup({
    agent: {
      command: (io) => {
        ran.push([...io.request.argv]);
        io.exit({ kind: 'exited', code: 0 });
      },
    },
    hasSshd: false,
  });
  await svc.create({ name: 'dev' }, ctx());
  await svc.pauser.pause('dev');
  await assert.rejects(
    svc.health('dev'),
    (e: Error & { hint?: string }) => /is paused/.test(e.message) && /banger vm resume dev/.test(e.hint ?? ''),
  );
  assert.equal(ran.length, 0, 'the frozen guest is not asked');
  const before = Math.floor(Date.now() / 1000);
  await svc.pauser.resume('dev');
  const after = Math.ceil(Date.now() / 1000);
  assert.equal(ran.length, 1);
  const [date, u, s, at] = ran[0] as string[];
  assert.deepEqual([date, u, s], ['date', '-u', '-s']);
  const secs = Number(at?.slice(1));
  assert.ok(at?.startsWith('@') && secs >= before && secs <= after, `${at} is the host's time`);
});

test('reconcile: a paused VM stays paused; the VMM run state wins over the recorded one; a dead paused VM is stopped', async () => {
  const { svc, vms, driver, restart } = setup();
  const a = await svc.create({ name: 'a' }, ctx());
  const b = await svc.create({ name: 'b' }, ctx());
  const c = await svc.create({ name: 'c' }, ctx());
  const dead = await svc.create({ name: 'dead' }, ctx());
  for (const n of ['a', 'c', 'dead']) await svc.pauser.pause(n);
  // b's VMM was paused by a daemon killed before it wrote the state; c's was resumed that way.
  (driver.procs.get(b.pid as number) as FakeVmm).paused = true;
  (driver.procs.get(c.pid as number) as FakeVmm).paused = false;
  driver.procs.delete(dead.pid as number);
  await restart().reconcile();
  assert.equal(vms.byName('a')?.state, 'paused');
  assert.equal(vms.byName('b')?.state, 'paused');
  assert.equal(vms.byName('c')?.state, 'running');
  assert.equal(vms.byName('dead')?.state, 'stopped');
  assert.equal(driver.procs.size, 3, 'no live VMM was killed');
  assert.ok(driver.procs.has(a.pid as number));
  // A VMM that does not answer keeps the recorded state.
  driver.runStateSays = 'fail';
  await restart().reconcile();
  assert.equal(vms.byName('a')?.state, 'paused');
  assert.equal(vms.byName('c')?.state, 'running');
});
