/**
 * Integration (network mode: user first, outside any namespace, with no VM
 * booted; then bridge, inside a network namespace this file creates and
 * deletes): the firecracker path end to end against a fake `firecracker`
 * (test/fakes/firecracker-bin.ts, serving the fake API that enforces what
 * firecracker 1.5 does) and `test_assume_kvm`. Nothing boots: no qemu, no
 * guest, so no ssh and no agent are expected (the image says it has no sshd).
 * The daemon, the fake firecracker, the bridge, the taps and the NAT rules all
 * live in the namespace. Traffic: none beyond the daemon's Unix sockets.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeBundle } from '../../src/imagepull/bundle.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { Paths } from '../../src/system/paths.js';
import { BANGER, REPO, sh, TEST_CONFIG, TestHome, type CliResult } from '../helpers/home.js';
import { missingRoot, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [
    ...missingRoot('to create a network namespace'),
    ...missingTools(['ip', 'iptables', 'sysctl', 'mkfs.ext4', 'debugfs']),
  ],
  'run as root; apt install iproute2 iptables procps e2fsprogs',
);

const NS = `banger-fc-${randomBytes(4).toString('hex')}`;
const DNS_PORT = randomInt(20_000, 60_000);
const FAKE_BIN = join(REPO, 'dist', 'test', 'fakes', 'firecracker-bin.js');
const host = new NodeRunner();
let home: TestHome;
let nsMade = false;
let callLog: string;
let wrapper: string;

interface Call {
  id: string;
  pid: number;
  method: string;
  path: string;
  body: unknown;
  status: number;
  fault?: string;
}

const calls = (): Call[] =>
  existsSync(callLog)
    ? readFileSync(callLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Call)
    : [];

async function inNs(argv: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return host
    .run(['ip', 'netns', 'exec', NS, ...argv], { env: home.env, timeoutMs })
    .catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
}

const bangerNs = (args: readonly string[]): Promise<CliResult> => inNs([process.execPath, BANGER, ...args], 2 * 60_000);

async function ok(args: readonly string[], inside = true): Promise<string> {
  const r = inside ? await bangerNs(args) : await home.banger(args, 2 * 60_000);
  assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}\n${home.daemonLog().slice(-3000)}`);
  return r.stdout;
}

interface Shown {
  id: string;
  state: string;
  vmm: string;
  vmm_reason?: string;
  accel: string;
  ip: string | null;
  pid: number | null;
}

const show = async (name: string, inside = true): Promise<Shown> =>
  JSON.parse(await ok(['vm', 'show', name, '--json'], inside)) as Shown;

async function nsNet(): Promise<{ taps: string[]; rules: string[] }> {
  const links = JSON.parse((await inNs(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const rules = (await inNs(['iptables', '-t', 'nat', '-S', 'POSTROUTING'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('-A'));
  return { taps: links.map((l) => l.ifname).filter((n) => n.startsWith('tap-')), rules };
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(procStatus(pid));
function procStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * An ELF64 x86_64 header, one PT_NOTE segment with the PVH entry note (Xen, type 18: so qemu's
 * check accepts it as well as firecracker's) and a Linux version string; never booted.
 */
function fakeVmlinux(): Buffer {
  const b = Buffer.alloc(0x1000, 0);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(2, 0x10); // ET_EXEC
  b.writeUInt16LE(0x3e, 0x12); // x86_64
  b.writeUInt32LE(1, 0x14);
  b.writeBigUInt64LE(64n, 0x20); // e_phoff
  b.writeUInt16LE(64, 0x34); // e_ehsize
  b.writeUInt16LE(56, 0x36); // e_phentsize
  b.writeUInt16LE(1, 0x38); // e_phnum
  // Program header 0: PT_NOTE at file offset 0x100, 20 bytes.
  b.writeUInt32LE(4, 64);
  b.writeBigUInt64LE(0x100n, 64 + 8);
  b.writeBigUInt64LE(20n, 64 + 32);
  // The note: namesz 4, descsz 4, type 18, "Xen\0", entry address.
  b.writeUInt32LE(4, 0x100);
  b.writeUInt32LE(4, 0x104);
  b.writeUInt32LE(18, 0x108);
  b.write('Xen\0', 0x10c, 'latin1');
  b.writeUInt32LE(0x1000000, 0x110);
  b.write('Linux version 9.9.9-fc (test@banger) #1 SMP\0', 0x200, 'latin1');
  return b;
}

/** A catalog with one image bundle `fcimg` (no sshd, kernel_ref fc-k); the kernel is imported separately. */
async function makeCatalog(dir: string): Promise<string> {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'root'), { recursive: true });
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'os-release'), 'ID=debian\n');
  const rootfs = join(dir, 'rootfs.ext4');
  const mk = sh(['mkfs.ext4', '-q', '-F', '-d', tree, rootfs, '16M']);
  assert.equal(mk.code, 0, mk.stderr);
  const bundle = join(dir, 'fcimg.tar.zst');
  const res = await writeBundle(
    rootfs,
    {
      format: 1,
      name: 'fcimg',
      distro: 'debian',
      arch: 'x86_64',
      kernel_ref: 'fc-k',
      rootfs_bytes: 16 << 20,
      assets_version: 1,
      created_at: new Date().toISOString(),
      has_sshd: false,
    },
    bundle,
  );
  const file = join(dir, 'catalog.json');
  writeFileSync(
    file,
    JSON.stringify({
      kernels: [],
      images: [
        {
          name: 'fcimg',
          distro: 'debian',
          tarball_url: `file://${bundle}`,
          tarball_sha256: res.sha256,
          kernel_ref: 'fc-k',
        },
      ],
    }),
  );
  return file;
}

before(async () => {
  if (skip) return;
  home = new TestHome('banger-it-fc-');
  const work = join(home.root, 'fixtures');
  mkdirSync(work, { recursive: true });
  const catalog = await makeCatalog(work);
  const config = new Paths(home.env, 0).configFile;
  mkdirSync(dirname(config), { recursive: true });
  const common = `${TEST_CONFIG}catalog = "${catalog}"\ndefault_image_name = "fcimg"\ndefault_kernel_name = "fc-k"\n`;
  // Outside the namespace, in user mode, vmm = "auto" (the default): the kernel and the image.
  writeFileSync(config, common);
  writeFileSync(join(work, 'vmlinux'), fakeVmlinux());
  const mods = join(work, '9.9.9-fc');
  mkdirSync(mods, { recursive: true });
  writeFileSync(join(mods, 'modules.dep'), '');
  writeFileSync(join(mods, 'modules.builtin'), 'kernel/drivers/virtio/virtio_mmio.ko\n');
  await ok(['kernel', 'import', 'fc-k', '--kernel', join(work, 'vmlinux'), '--modules', mods], false);
  await ok(['image', 'pull', 'fcimg'], false);

  // The fake firecracker, as an executable firecracker_bin names; it logs every API call here.
  callLog = join(work, 'fc-calls.jsonl');
  wrapper = join(work, 'firecracker');
  writeFileSync(wrapper, `#!/bin/sh\nFAKE_FC_LOG='${callLog}' exec '${process.execPath}' '${FAKE_BIN}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  assert.ok(existsSync(FAKE_BIN), `${FAKE_BIN} is built`);
});

after(async () => {
  if (skip) return;
  await home.cleanup();
  if (nsMade) await host.run(['ip', 'netns', 'del', NS], { timeoutMs: 30_000 });
});

test('vmm = "auto" picks qemu on this host and says why (vm show, doctor); no VM boots', { skip }, async () => {
  await ok(['vm', 'create', '--name', 'q1', '--no-start'], false);
  const q = await show('q1', false);
  assert.equal(q.vmm, 'qemu');
  // This host has no firecracker binary and no usable KVM, and runs in user mode: the first blocker is named.
  assert.match(q.vmm_reason ?? '', /^firecracker: (binary not found|no usable KVM|needs network_mode = "bridge")/);
  const text = await ok(['vm', 'show', 'q1'], false);
  assert.match(text, new RegExp(`vmm\\s+qemu \\(${q.vmm_reason?.replace(/[()[\]."]/g, '\\$&') ?? ''}\\)`));
  const doctor = await home.banger(['doctor'], 60_000);
  assert.match(doctor.stdout, /vmm\s.*qemu \(firecracker: /, doctor.stdout);
  await ok(['vm', 'delete', 'q1'], false);
  const stop = await home.banger(['daemon', 'stop'], 60_000);
  assert.equal(stop.code, 0, stop.stderr);
});

test(
  'firecracker end to end against the fake, in a namespace: vmm = "auto" picks it, the API calls, the tap, NAT, and full cleanup on delete',
  { skip },
  async () => {
    const config = new Paths(home.env, 0).configFile;
    const catalog = /catalog = "([^"]+)"/.exec(readFileSync(config, 'utf8'))?.[1] ?? '';
    writeFileSync(
      config,
      [
        TEST_CONFIG,
        `catalog = "${catalog}"`,
        'default_image_name = "fcimg"',
        'default_kernel_name = "fc-k"',
        'network_mode = "bridge"',
        `dns_listen = "127.0.0.1:${DNS_PORT}"`,
        `firecracker_bin = "${wrapper}"`,
        'test_assume_kvm = true',
        '',
      ].join('\n'),
    );
    await home.banger(['daemon', 'stop'], 60_000);
    await host.check(['ip', 'netns', 'add', NS], { timeoutMs: 30_000 });
    nsMade = true;
    await host.check(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'], { timeoutMs: 30_000 });

    await ok(['vm', 'create', '--name', 'fc1', '--nat']);
    const vm = await show('fc1');
    assert.equal(vm.state, 'running');
    assert.equal(vm.vmm, 'firecracker');
    assert.equal(vm.accel, 'kvm');
    assert.equal(vm.vmm_reason, 'firecracker 1.7.0, KVM and kernel "fc-k" are usable');
    assert.match(vm.ip ?? '', /^172\.16\.0\.\d+$/);
    const tap = `tap-${vm.id.slice(0, 11)}`;

    const first = calls();
    const pid1 = first[0]?.pid ?? 0;
    assert.equal(vm.pid, pid1, 'vm show names the fake firecracker process');
    assert.ok(alive(pid1));
    assert.deepEqual(
      first.map((c) => `${c.method} ${c.path} ${c.status}`),
      [
        'GET /version 200',
        'PUT /logger 204',
        'PUT /machine-config 204',
        'PUT /boot-source 204',
        'PUT /drives/root 204',
        'PUT /drives/work 204',
        'PUT /drives/modules 204',
        'PUT /network-interfaces/eth0 204',
        'PUT /vsock 204',
        'PUT /actions 204',
      ],
      JSON.stringify(first, null, 1),
    );
    const body = (path: string): Record<string, unknown> =>
      first.find((c) => c.path === path)?.body as Record<string, unknown>;
    assert.equal(body('/network-interfaces/eth0').host_dev_name, tap);
    assert.match(String(body('/drives/root').path_on_host), /root\.raw$/, 'a raw root disk (reflink or sparse copy)');
    assert.equal(body('/vsock').guest_cid, 3);
    assert.match(
      String(body('/boot-source').boot_args),
      new RegExp(`banger\\.ip=${vm.ip}/\\d+ .*banger\\.agent=vsock:1024`),
    );
    // Firecracker cannot set virtio serials: the guest finds its disks by the order the drives were PUT.
    const bootArgs = String(body('/boot-source').boot_args);
    for (const want of ['banger.root=/dev/vda', 'banger.work=/dev/vdb', 'banger.modules=/dev/vdc'])
      assert.ok(bootArgs.split(' ').includes(want), `${want} in ${bootArgs}`);
    assert.doesNotMatch(bootArgs, /=banger-(root|work|modules)\b/, 'no serials on the firecracker command line');
    assert.deepEqual(
      ['root', 'work', 'modules'].map((id) => body(`/drives/${id}`).is_root_device),
      [true, false, false],
    );
    assert.deepEqual(body('/actions'), { action_type: 'InstanceStart' });

    // The agent answers over firecracker's vsock socket (CONNECT handshake), from the fake guest.
    const health = JSON.parse(await ok(['vm', 'health', 'fc1', '--json'])) as Record<string, unknown>;
    assert.equal(typeof health, 'object', JSON.stringify(health));

    let net = await nsNet();
    assert.deepEqual(net.taps, [tap]);
    assert.equal(net.rules.filter((r) => r.includes(`-s ${vm.ip}/32`)).length, 1, net.rules.join('\n'));

    // Stop and start: a new firecracker process, configured and started once; still one NAT rule.
    await ok(['vm', 'stop', 'fc1']);
    assert.ok(!alive(pid1), 'stop ends the firecracker process');
    await ok(['vm', 'start', 'fc1']);
    const again = calls().slice(first.length);
    const pid2 = again[0]?.pid ?? 0;
    assert.notEqual(pid2, pid1);
    assert.equal(again.filter((c) => c.path === '/actions' && c.method === 'PUT').length, 1);
    assert.ok(
      again.every((c) => c.status < 300),
      JSON.stringify(again),
    );
    net = await nsNet();
    assert.deepEqual(net.taps, [tap]);
    assert.equal(net.rules.filter((r) => r.includes(`-s ${vm.ip}/32`)).length, 1, net.rules.join('\n'));

    await ok(['vm', 'delete', 'fc1']);
    assert.ok(!alive(pid2), 'delete ends the firecracker process');
    net = await nsNet();
    assert.deepEqual(net.taps, [], 'no tap after delete');
    assert.deepEqual(
      net.rules.filter((r) => r.includes('172.16.')),
      [],
      'no NAT rule after delete',
    );
  },
);

test(
  'resolver routing guard: the daemon knows when it runs in a network namespace other than the host one',
  { skip },
  async () => {
    // systemd-resolved lives in the host namespace; inside a test's namespace banger must not route ~vm through it.
    const probe = `import('${join(REPO, 'dist', 'src', 'system', 'host.js')}').then(async (m) => process.stdout.write(String(await new m.HostProbe().inOtherNetns())))`;
    const outside = await host.run([process.execPath, '-e', probe], { timeoutMs: 30_000 });
    assert.equal(outside.stdout, 'false', outside.stderr);
    if (!nsMade) {
      await host.check(['ip', 'netns', 'add', NS], { timeoutMs: 30_000 });
      nsMade = true;
    }
    const inside = await inNs([process.execPath, '-e', probe]);
    assert.equal(inside.stdout, 'true', inside.stderr);
  },
);
