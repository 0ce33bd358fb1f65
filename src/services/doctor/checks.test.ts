import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { defaultConfig, type Config } from '../../config/config.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { KernelRepo } from '../../store/kernels.js';
import { VmRepo } from '../../store/vms.js';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import type { CpuInfo, HostProbe } from '../../system/host.js';
import { Paths } from '../../system/paths.js';
import { HOST_TOOLS, runChecks, type CheckRow, type DoctorInput } from './checks.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A host where nothing is installed and KVM is absent: every probe answers at once. */
const host = {
  kvmReadWrite: async () => false,
  cpuInfo: async () => ({ hasVirt: false, tscKhz: undefined, modelName: undefined }),
  which: async () => undefined,
  cpuCount: () => 2,
  memBytes: () => 8 * 2 ** 30,
} as unknown as HostProbe;

/** A state dir whose store holds VMs `dev` (handles in the store) and `bare` (none), both running. */
function home(): Paths {
  const root = mkdtempSync(join(tmpdir(), 'doctor-'));
  roots.push(root);
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  mkdirSync(paths.stateDir, { recursive: true });
  const db = openStore(paths.dbFile);
  new ImageRepo(db).insert(imageRow());
  const vm = (id: string, name: string, withHandles: boolean) =>
    vmRow({
      id,
      name,
      state: 'running',
      sshPort: 2222,
      handles: withHandles ? { pid: 7, startTime: 1, controlSocket: '/q', sshPort: 2222 } : undefined,
    });
  new VmRepo(db).insert(vm('aaaa', 'dev', true));
  new VmRepo(db).insert(vm('bbbb', 'bare', false));
  db.close();
  for (const id of ['aaaa', 'bbbb']) mkdirSync(paths.vmDir(id), { recursive: true });
  return paths;
}

const check = (paths: Paths) =>
  runChecks({
    paths,
    host,
    runner: new FakeRunner(),
    version: 'test',
    config: defaultConfig({ cpus: 2, memBytes: 8 * 2 ** 30 }),
    configError: undefined,
    arch: 'x64',
  });

test('doctor warns about a corrupt handles.json, naming the VM, the file and whether the store has a copy', async () => {
  const paths = home();
  writeFileSync(join(paths.vmDir('aaaa'), 'handles.json'), '{"pid": 7');
  writeFileSync(join(paths.vmDir('bbbb'), 'handles.json'), '[]');
  const row = (await check(paths)).find((r) => r.name === 'vm handles');
  assert.ok(row, 'a vm handles row');
  assert.equal(row.status, 'WARN');
  assert.match(row.detail, /dev: .*aaaa\/handles\.json is not valid JSON.*; using the copy in the store/);
  assert.match(row.detail, /bare: .*bbbb\/handles\.json does not hold VM handles.*no copy in the store/);
  assert.match(row.fix ?? '', /banger vm restart/);
});

test('doctor passes handles.json files that are fine or absent', async () => {
  const paths = home();
  writeFileSync(
    join(paths.vmDir('aaaa'), 'handles.json'),
    JSON.stringify({ pid: 7, startTime: 1, controlSocket: '/q', sshPort: 2222 }),
  );
  const row = (await check(paths)).find((r) => r.name === 'vm handles');
  assert.deepEqual(row, {
    name: 'vm handles',
    status: 'PASS',
    detail: '2 VMs; every handles.json is readable or absent',
  });
});

/*
 * doctor's checks on a made-up host: which programs exist (and what they
 * print), /dev/kvm and the CPU flags, the state store. Nothing real is probed.
 */

interface HostSpec {
  /** Programs present, by name; all of HOST_TOOLS, qemu, and no firecracker by default. */
  bins?: string[];
  kvmRw?: boolean;
  hasVirt?: boolean;
}

const ALL_BINS = ['qemu-system-x86_64', ...HOST_TOOLS.map((t) => t.bin)];

function fakeHost(h: HostSpec): HostProbe {
  const bins = new Set(h.bins ?? ALL_BINS);
  const cpu: CpuInfo = { hasVirt: h.hasVirt ?? false, tscKhz: 2_000_000, modelName: 'test cpu' };
  return {
    cpuInfo: async () => cpu,
    kvmReadWrite: async () => h.kvmRw ?? false,
    which: async (bin: string) => (bins.has(bin) ? `/usr/bin/${bin}` : undefined),
  } as unknown as HostProbe;
}

/** The version answers of a healthy host: qemu 7.2, mke2fs 1.47. */
function healthyRunner(): FakeRunner {
  return new FakeRunner()
    .on((a) => a[0] === '/usr/bin/qemu-system-x86_64' && a[1] === '--version', {
      stdout: 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022\n',
    })
    .on((a) => a[0] === '/usr/bin/mkfs.ext4' && a[1] === '-V', {
      stderr: 'mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n',
    });
}

function input(
  t: TestContext,
  over: Partial<DoctorInput> & { hostSpec?: HostSpec } = {},
): DoctorInput & { root: string } {
  const root = mkdtempSync(join(tmpdir(), 'doctor-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const runner = over.runner ?? healthyRunner();
  t.after(() => (runner as FakeRunner).assertNoUnexpected());
  return {
    root,
    paths: new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0),
    host: fakeHost(over.hostSpec ?? {}),
    runner,
    version: '0.1.0+test',
    config: defaultConfig({ cpus: 2, memBytes: 8 * 2 ** 30 }),
    configError: undefined,
    arch: 'x64',
    ...over,
  };
}

const row = (rows: CheckRow[], name: string): CheckRow => {
  const r = rows.find((x) => x.name === name);
  assert.ok(r, `a "${name}" row in ${JSON.stringify(rows.map((x) => x.name))}`);
  return r;
};

test('doctor: a healthy host without KVM passes everything but warns about software emulation', async (t) => {
  const rows = await runChecks(input(t));
  assert.deepEqual(
    rows.filter((r) => r.status === 'FAIL'),
    [],
  );
  const hv = row(rows, 'hardware virtualization');
  assert.equal(hv.status, 'WARN');
  assert.match(
    hv.detail,
    /\/dev\/kvm is missing or not read-write: software emulation \(TCG\); VMs will be many times slower/,
  );
  assert.match(hv.fix ?? '', /VT-x\/AMD-V/);
  assert.deepEqual(row(rows, 'qemu'), {
    name: 'qemu',
    status: 'PASS',
    detail: 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)',
  });
  assert.equal(row(rows, 'mkfs.ext4').detail, 'e2fsprogs 1.47 (supports -d)');
  for (const tool of HOST_TOOLS) assert.equal(row(rows, tool.bin).status, 'PASS', tool.bin);
  assert.match(row(rows, 'state store').detail, /created on first use/);
  assert.match(
    row(rows, 'default image').detail,
    /debian-bookworm: not present yet; made on first use from the catalog/,
  );
  assert.match(row(rows, 'vm defaults').detail, /^vcpu \d+ \(\w+\), memory \d+ MiB/);
  assert.equal(
    rows.some((r) => r.name === 'firecracker'),
    false,
    'no firecracker row without its binary',
  );
});

test('doctor: with KVM usable the virtualization check passes', async (t) => {
  const rows = await runChecks(input(t, { hostSpec: { kvmRw: true, hasVirt: true } }));
  assert.equal(row(rows, 'hardware virtualization').status, 'PASS');
});

test('doctor: missing programs fail (required) or warn (optional), each with the package to install', async (t) => {
  const present = ALL_BINS.filter((b) => !['qemu-system-x86_64', 'ssh', 'mmdebstrap'].includes(b));
  const rows = await runChecks(
    input(t, {
      hostSpec: { bins: present },
      runner: new FakeRunner().on((a) => a[1] === '-V', { stderr: 'mke2fs 1.47.0 (5-Feb-2023)\n' }),
    }),
  );
  assert.deepEqual(row(rows, 'qemu'), {
    name: 'qemu',
    status: 'FAIL',
    detail: 'qemu-system-x86_64 not found',
    fix: 'apt-get install qemu-system-x86',
  });
  assert.deepEqual(row(rows, 'ssh'), {
    name: 'ssh',
    status: 'FAIL',
    detail: 'not found (needed for vm run / vm ssh)',
    fix: 'apt-get install openssh-client',
  });
  assert.deepEqual(row(rows, 'mmdebstrap'), {
    name: 'mmdebstrap',
    status: 'WARN',
    detail: 'not found (needed for building the default image)',
    fix: 'apt-get install mmdebstrap',
  });
});

test('doctor: an mke2fs too old for -d fails; a qemu that hangs on --version fails instead of hanging doctor', async (t) => {
  const runner = new FakeRunner()
    .on((a) => a[1] === '--version', { durationMs: Infinity })
    .on((a) => a[1] === '-V', { stderr: 'mke2fs 1.42.9 (28-Dec-2013)\n' });
  const rows = await runChecks(input(t, { runner }));
  assert.deepEqual(row(rows, 'mkfs.ext4'), {
    name: 'mkfs.ext4',
    status: 'FAIL',
    detail: 'e2fsprogs 1.42 (too old for -d)',
    fix: 'install e2fsprogs 1.43 or newer',
  });
  assert.deepEqual(row(rows, 'qemu'), {
    name: 'qemu',
    status: 'FAIL',
    detail: '/usr/bin/qemu-system-x86_64 does not answer --version',
  });
});

test('doctor: another architecture and an unreadable config fail with what to do', async (t) => {
  const rows = await runChecks(
    input(t, { arch: 'arm64', config: undefined, configError: 'config.toml line 3: unknown key "vcpus"' }),
  );
  assert.deepEqual(row(rows, 'architecture'), {
    name: 'architecture',
    status: 'FAIL',
    detail: 'arm64',
    fix: 'banger runs on x86_64 Linux hosts only',
  });
  const cfg = row(rows, 'config');
  assert.equal(cfg.status, 'FAIL');
  assert.equal(cfg.detail, 'config.toml line 3: unknown key "vcpus"');
  assert.match(cfg.fix ?? '', /config\.toml$/);
});

test('doctor: firecracker is reported with its version; too old warns; vmm = "firecracker" without KVM fails', async (t) => {
  const runner = healthyRunner().on((a) => a[0] === '/usr/bin/firecracker' && a[1] === '--version', {
    stdout: 'Firecracker v1.4.1\n',
  });
  const config: Config = { ...defaultConfig({ cpus: 2, memBytes: 8 * 2 ** 30 }), vmm: 'firecracker' };
  const rows = await runChecks(input(t, { runner, config, hostSpec: { bins: [...ALL_BINS, 'firecracker'] } }));
  assert.deepEqual(row(rows, 'firecracker'), {
    name: 'firecracker',
    status: 'WARN',
    detail: 'firecracker 1.4.1 is too old; banger needs 1.5.0 or later',
  });
  const vmm = row(rows, 'vmm');
  assert.equal(vmm.status, 'FAIL');
  assert.equal(
    vmm.detail,
    'vmm = "firecracker" cannot run here: firecracker 1.4.1 is too old; banger needs 1.5.0 or later; no usable KVM (/dev/kvm is missing or not read-write: software emulation (TCG)); needs network_mode = "bridge"; default kernel "debian-bookworm-cloud" is not pulled yet',
  );
});

test('doctor: the state store: default image without work-seed warns, a kernel qemu cannot boot fails, a corrupt store fails', async (t) => {
  const i = input(t);
  mkdirSync(i.paths.stateDir, { recursive: true });
  const db = openStore(i.paths.dbFile);
  new ImageRepo(db).insert(
    imageRow({ id: 'img0123456789abcdef', name: 'debian-bookworm', kernelName: 'debian-bookworm-cloud' }),
  );
  new KernelRepo(db).insert({
    name: 'debian-bookworm-cloud',
    distro: 'debian',
    arch: 'x86_64',
    version: '6.1.0-9',
    format: 'elf',
    source: 'test',
    sha256: '0'.repeat(64),
    dir: '/k',
    hasInitrd: false,
    hasModules: true,
    moduleCount: 10,
    traits: { virtioMmio: 'absent' },
    createdAt: 'now',
  });
  db.close();
  const rows = await runChecks(i);
  assert.deepEqual(row(rows, 'state store'), { name: 'state store', status: 'PASS', detail: i.paths.dbFile });
  assert.equal(row(rows, 'default image').detail, 'debian-bookworm (img012345678)');
  assert.deepEqual(row(rows, 'work-seed'), {
    name: 'work-seed',
    status: 'WARN',
    detail: 'debian-bookworm has no work-seed: /root starts empty',
    fix: 'rebuild the image',
  });
  assert.equal(row(rows, 'default kernel').detail, 'debian-bookworm-cloud 6.1.0-9 (elf)');
  assert.equal(row(rows, 'default kernel boots').status, 'FAIL', JSON.stringify(row(rows, 'default kernel boots')));

  const bad = input(t);
  mkdirSync(bad.paths.stateDir, { recursive: true });
  writeFileSync(bad.paths.dbFile, 'this is not a database, just text that is long enough to have a header'.repeat(20));
  const badRows = await runChecks(bad);
  assert.equal(badRows.filter((r) => r.name === 'state store').length, 1, 'one verdict on the store');
  const store = row(badRows, 'state store');
  assert.equal(store.status, 'FAIL');
  assert.match(store.detail, /banger\.db: /);
  assert.equal(store.fix, 'move the state directory aside and retry');
});

test('doctor: with the network probe given, the host-networking rows are there (user mode: nothing fails)', async (t) => {
  const runner = healthyRunner()
    .on((a) => a.join(' ') === 'sysctl -n net.ipv4.ip_forward', { stdout: '0\n' })
    .on((a) => a.join(' ') === 'sudo -n true', { code: 1 });
  const rows = await runChecks(
    input(t, { runner, network: { euid: 1000, probeDns: async () => ({ state: 'silent' }) } }),
  );
  for (const name of ['network mode', 'network privilege', 'bridge', 'iptables', 'IP forwarding', 'DNS listener'])
    assert.notEqual(row(rows, name).status, 'FAIL', name);
  assert.equal(rows.filter((r) => r.status === 'FAIL').length, 0);
});

test('doctor: vmm = "auto" shows the VMM the daemon picks and why', async (t) => {
  const rows = await runChecks(input(t));
  assert.deepEqual(row(rows, 'vmm'), {
    name: 'vmm',
    status: 'PASS',
    detail: 'qemu (firecracker: binary not found (firecracker_bin = "firecracker"))',
  });
});
