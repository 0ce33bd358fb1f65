/**
 * Integration (network: none — every banger command here runs in a fresh,
 * empty network namespace (`unshare -n`), and so does the daemon the first one
 * starts: a URL that banger failed to refuse could not reach anything, and a
 * default kernel or image pull it should not have started fails at once).
 *
 * The bad-input corpus: every CLI verb that takes input gets malformed names,
 * sizes, refs, paths, URLs and config files. Each must exit non-zero with a
 * message naming the bad value, pull no default kernel or image, and leave no
 * state behind: no new rows in vm/image/kernel list, no new dirs under the
 * state dir's vms/, images/ and kernels/, no qemu process. No VM is booted.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BANGER, sh, TEST_CONFIG, TestHome } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { runBounded } from '../helpers/run.js';
import { sha256Hex, tarZst } from '../helpers/tar-zst.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';

const skip = requirements(
  [
    ...(sh(['unshare', '-n', '--', 'true']).code === 0 ? [] : ['unshare -n (root and util-linux)']),
    ...missingTools(['mkfs.ext4']),
  ],
  'run as root; apt install util-linux e2fsprogs',
);

const home = new TestHome('banger-bad-');
const fx = join(home.root, 'fixtures');
const HEX = 'ab'.repeat(32);
const CLI_TIMEOUT_MS = 60_000;

/** banger in its own empty network namespace. */
const cli = (args: readonly string[]) =>
  runBounded(['unshare', '-n', '--', process.execPath, BANGER, ...args], home.env, CLI_TIMEOUT_MS);

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

interface Case {
  args: string[];
  /** Must match stderr: the message names the bad value. */
  names: RegExp;
  /** Exit code when it is not 1. */
  code?: number;
  /** config.toml to write before the command (the daemon is stopped first, so it starts with it). */
  config?: string;
}

const name64 = 'a'.repeat(64);
const sizeValues = ['0', '-1', '1e12', 'abc', '5X'];

const CASES: Case[] = [
  // VM names: vm create (no start) and vm run (command mode exits 125 for banger's own failures).
  {
    args: ['vm', 'create', '--no-start', '--name', 'BadName'],
    names: /invalid VM name "BadName": character "B" at position 1/,
  },
  {
    args: ['vm', 'create', '--no-start', '--name', '-x'],
    names: /invalid VM name "-x": the name must not start with "-"/,
  },
  {
    args: ['vm', 'create', '--no-start', '--name', 'x-'],
    names: /invalid VM name "x-": the name must not end with "-"/,
  },
  {
    args: ['vm', 'create', '--no-start', '--name', name64],
    names: new RegExp(`invalid VM name "${name64}": the name is 64 characters long; the limit is 63`),
  },
  { args: ['vm', 'create', '--no-start', '--name', ''], names: /invalid --name "": must not be empty/ },
  {
    args: ['vm', 'create', '--no-start', '--name', 'héllo'],
    names: /invalid VM name "héllo": character "é" at position 2/,
  },
  {
    args: ['vm', 'create', '--no-start', '--name', 'dev😀'],
    names: /invalid VM name "dev😀": character "😀" at position 4/,
  },
  { args: ['vm', 'run', '--rm', '--name', 'BadName', '--', 'true'], names: /invalid VM name "BadName"/, code: 125 },
  { args: ['vm', 'run', '--rm', '--name', '', '--', 'true'], names: /invalid --name "": must not be empty/, code: 125 },
  { args: ['vm', 'run', '-d', '--name', 'Bad_Name'], names: /invalid VM name "Bad_Name"/ },
  // Sizes and counts.
  ...sizeValues.map((v) => ({
    args: ['vm', 'create', '--no-start', '--memory', v],
    names: new RegExp(`invalid memory "${esc(v)}": not a size`),
  })),
  ...sizeValues.map((v) => ({
    args: ['vm', 'create', '--no-start', '--vcpu', v],
    // Non-numbers are refused by the CLI (--vcpu), numbers out of range by the daemon (the vcpu field).
    names: new RegExp(`invalid (--)?vcpu "?${esc(v)}"?:`),
  })),
  ...sizeValues.map((v) => ({
    args: ['vm', 'create', '--no-start', '--disk-size', v],
    names: new RegExp(`invalid disk_size "${esc(v)}": not a size`),
  })),
  {
    args: ['vm', 'create', '--no-start', '--memory', '100000000'],
    names: /invalid memory_mib 100000000: more than this host's memory \(at most \d+ MiB\)/,
  },
  {
    args: ['vm', 'create', '--no-start', '--vcpu', '65'],
    names: /invalid vcpu 65: more than this host's \d+ CPUs \(at most \d+\)/,
  },
  {
    args: ['vm', 'create', '--no-start', '--disk-size', '9T'],
    names: /invalid disk_bytes 9895604649984 \(9T\): larger than the maximum disk size, 8T/,
  },
  {
    args: ['vm', 'create', '--no-start', '--disk-size', '1M'],
    names: /invalid disk_bytes 1048576 \(1M\): must be at least 64M/,
  },
  { args: ['vm', 'run', '--rm', '--memory', '5X', '--', 'true'], names: /invalid memory "5X": not a size/, code: 125 },
  { args: ['vm', 'run', '--rm', '--vcpu', '0', '--', 'true'], names: /invalid vcpu 0/, code: 125 },
  // Refs are resolved before the daemon parses the sizes of vm.set.
  { args: ['vm', 'set', 'nosuch', '--memory', 'abc'], names: /nosuch: no VM named "nosuch"/ },
  { args: ['vm', 'set', 'nosuch', '--vcpu', '2'], names: /nosuch: no VM named "nosuch"/ },
  // Image refs for VMs.
  {
    args: ['vm', 'create', '--no-start', '--image', 'NoSuch'],
    names: /image "NoSuch" does not exist and is not in the catalog/,
  },
  {
    args: ['vm', 'create', '--no-start', '--image', '127.0.0.1:1/x/y:z'],
    names: /image "127\.0\.0\.1:1\/x\/y:z" does not exist/,
  },
  { args: ['vm', 'create', '--no-start', '--image', ''], names: /invalid --image "": must not be empty/ },
  // VM refs and other vm inputs.
  ...(['show', 'logs', 'stats', 'ssh'] as const).map((v) => ({
    args: ['vm', v, 'nosuch'],
    names: /no VM named "nosuch"/,
  })),
  ...(['start', 'stop', 'restart', 'kill', 'delete'] as const).map((v) => ({
    args: ['vm', v, 'nosuch'],
    names: /nosuch: no VM named "nosuch"/,
  })),
  { args: ['vm', 'delete', ''], names: /invalid <vm> "": must not be empty/ },
  { args: ['vm', 'show', 'BAD name'], names: /no VM named "BAD name"/ },
  { args: ['vm', 'kill', 'nosuch', '--signal', 'SIGFOO'], names: /unknown signal "SIGFOO"/ },
  { args: ['vm', 'cp', 'a', 'b'], names: /exactly one of "a" and "b" must be NAME:\/path/ },
  { args: ['vm', 'cp', '/etc/hostname', 'nosuch:/root/'], names: /no VM named "nosuch"/ },
  { args: ['vm', 'run', '/does/not/exist'], names: /workspace path "\/does\/not\/exist" does not exist/ },
  { args: ['vm', 'run', '/', '--dry-run'], names: /workspace path "\/" is not inside a git repository/ },
  { args: ['vm', 'run', '--dry-run'], names: /--dry-run needs a path/ },
  {
    args: ['vm', 'workspace', 'prepare', 'nosuch', '/does/not/exist'],
    names: /workspace path "\/does\/not\/exist" does not exist/,
  },
  { args: ['vm', 'run', '--rm', '-e', 'NOEQUALS', '--', 'true'], names: /invalid -e "NOEQUALS"/, code: 125 },
  // image pull: OCI references (all on a loopback port nothing listens on; each fails before any download).
  {
    args: ['image', 'pull', 'UPPER/Case'],
    names: /invalid image reference "UPPER\/Case": repository name "UPPER\/Case" must be lowercase/,
  },
  { args: ['image', 'pull', 'a b'], names: /invalid image reference "a b"/ },
  { args: ['image', 'pull', ''], names: /invalid <ref> "": must not be empty/ },
  // This namespace has no default route and no proxy: refused before the (loopback, closed) registry is asked.
  {
    args: ['image', 'pull', '127.0.0.1:9/team/app:v1', '--install-sshd'],
    names: /--install-sshd needs outbound network for the guest’s package manager, and this host is offline/,
  },
  { args: ['image', 'refresh', 'nosuch'], names: /no image named "nosuch"/ },
  { args: ['image', 'pull', '127.0.0.1:1/x/y', '--name', 'Bad Name'], names: /invalid image name "Bad Name"/ },
  { args: ['image', 'pull', '127.0.0.1:1/x/y', '--name', 'fixture-img'], names: /image "fixture-img" already exists/ },
  { args: ['image', 'pull', '127.0.0.1:1/x/y', '--size', '5X'], names: /invalid size "5X": not a size/ },
  {
    args: ['image', 'pull', '127.0.0.1:1/x/y', '--size', '9T'],
    names: /size 9T is larger than the maximum disk size, 8T/,
  },
  {
    args: ['image', 'pull', '127.0.0.1:1/x/y', '--kernel', '/does/not/exist'],
    names: /kernel \/does\/not\/exist does not exist/,
  },
  {
    args: ['image', 'pull', '127.0.0.1:1/x/y', '--kernel-ref', 'nosuch'],
    names: /kernel "nosuch" is not in the catalog/,
  },
  // The kernel these files make is imported before the download: a failed pull must not leave it.
  {
    args: ['image', 'pull', '127.0.0.1:1/x/y', '--name', 'withk', '--kernel', join(fx, 'vmlinuz')],
    names: /cannot reach registry 127\.0\.0\.1:1/,
  },
  { args: ['image', 'pull', '127.0.0.1:1/x/y', '--kernel-ref', 'Bad/Name'], names: /invalid kernel name "Bad\/Name"/ },
  {
    args: ['image', 'pull', '127.0.0.1:1/x/y', '--initrd', '/does/not/exist'],
    names: /initrd and modules need kernel/,
  },
  // image pull: bundle URLs. Refused ones are refused before any connection (and could not connect anyway).
  {
    args: ['image', 'pull', 'ftp://127.0.0.1/x.tar.zst', '--sha256', HEX],
    names: /unsupported URL scheme "ftp:": ftp:\/\/127\.0\.0\.1\/x\.tar\.zst/,
  },
  {
    args: ['image', 'pull', 'http://192.0.2.1/x.tar.zst', '--sha256', HEX],
    names: /refusing to download over plain http from 192\.0\.2\.1:80: http:\/\/192\.0\.2\.1\/x\.tar\.zst/,
  },
  {
    args: ['image', 'pull', 'http://10.11.12.13:5000/x.tar.zst', '--sha256', HEX],
    names: /refusing to download over plain http from 10\.11\.12\.13:5000/,
  },
  {
    args: ['image', 'pull', 'https://user:pw@127.0.0.1:1/x.tar.zst', '--sha256', HEX],
    names: /refusing a URL with embedded credentials: https:\/\/127\.0\.0\.1:1\/x\.tar\.zst/,
  },
  { args: ['image', 'pull', 'https://127.0.0.1:1/x.tar.zst'], names: /pulling a bundle needs sha256/ },
  {
    args: ['image', 'pull', 'https://127.0.0.1:1/x.tar.zst', '--sha256', 'zz'],
    names: /invalid sha256 "zz": a sha256 is 64 hexadecimal digits/,
  },
  {
    args: ['image', 'pull', 'https://127.0.0.1:1/x.tar.zst', '--sha256', HEX, '--name', 'Bad'],
    names: /invalid image name "Bad"/,
  },
  {
    args: ['image', 'pull', 'file:///does/not/exist.tar.zst', '--sha256', HEX],
    names: /cannot open \/does\/not\/exist\.tar\.zst: no such file/,
  },
  {
    args: ['image', 'pull', 'file:///does/not/exist.tar.zst', '--sha256', HEX, '--name', 'fixture-img'],
    names: /image "fixture-img" already exists/,
  },
  {
    args: ['image', 'pull', 'file:///does/not/exist.tar.zst', '--sha256', HEX, '--size', '2G'],
    names: /size 2G does not apply to a bundle/,
  },
  // The bundle's manifest names an existing image: refused at the manifest, before the (wrongly pinned) rest.
  {
    args: ['image', 'pull', `file://${join(fx, 'taken.tar.zst')}`, '--sha256', HEX],
    names: /image "fixture-img" already exists/,
  },
  // image pull: catalog recipes do not take flags that would change what they build.
  {
    args: ['image', 'pull', 'debian-bookworm', '--name', 'other'],
    names: /name cannot be used when pulling the catalog image "debian-bookworm"/,
  },
  {
    args: ['image', 'pull', 'debian-bookworm', '--size', '2G'],
    names: /size cannot be used when pulling the catalog image "debian-bookworm"/,
  },
  // image build / register / others.
  { args: ['image', 'build', 'BadName'], names: /invalid image name "BadName": character "B" at position 1/ },
  { args: ['image', 'build', 'fixture-img'], names: /image "fixture-img" already exists/ },
  { args: ['image', 'build', 'ok', '--suite', 'Bad Suite'], names: /invalid --suite "Bad Suite"/ },
  { args: ['image', 'build', 'ok', '--packages', 'good,bad pkg'], names: /invalid package name "bad pkg"/ },
  { args: ['image', 'build', 'ok', '--size', 'abc'], names: /invalid size "abc": not a size/ },
  {
    args: ['image', 'build', 'ok', '--mirror', 'ftp://127.0.0.1/debian'],
    names: /invalid --mirror "ftp:\/\/127\.0\.0\.1\/debian": expected an http\(s\) URL/,
  },
  {
    args: ['image', 'register', 'BadName', '--rootfs', join(fx, 'rootfs.ext4')],
    names: /invalid image name "BadName"/,
  },
  {
    args: ['image', 'register', 'fixture-img', '--rootfs', join(fx, 'rootfs.ext4')],
    names: /image "fixture-img" already exists/,
  },
  {
    args: ['image', 'register', 'ok', '--rootfs', '/does/not/exist'],
    names: /rootfs \/does\/not\/exist does not exist/,
  },
  {
    args: ['image', 'register', 'ok', '--rootfs', join(fx, 'initrd.img')],
    names: new RegExp(`rootfs ${esc(join(fx, 'initrd.img'))} is not an ext4 filesystem image`),
  },
  {
    args: ['image', 'register', 'ok', '--rootfs', join(fx, 'rootfs.ext4'), '--work-seed', '/does/not/exist'],
    names: /work_seed \/does\/not\/exist does not exist/,
  },
  {
    args: ['image', 'register', 'ok', '--rootfs', join(fx, 'rootfs.ext4'), '--kernel-ref', 'nosuch'],
    names: /kernel "nosuch" is not in the catalog/,
  },
  ...(['show', 'delete', 'promote'] as const).map((v) => ({
    args: ['image', v, 'nosuch'],
    names: /no image named "nosuch"/,
  })),
  { args: ['image', 'export', 'nosuch', '-o', join(fx, 'out.tar.zst')], names: /no image named "nosuch"/ },
  {
    args: ['image', 'export', 'fixture-img', '-o', '/does/not/exist/out.tar.zst'],
    names: /cannot write bundle \/does\/not\/exist\/out\.tar\.zst/,
  },
  // Kernels.
  {
    args: ['kernel', 'import', 'Bad/Name', '--kernel', join(fx, 'vmlinuz')],
    names: /invalid kernel name "Bad\/Name": character "\/" at position 4/,
  },
  {
    args: ['kernel', 'import', 'fixture-k', '--kernel', join(fx, 'vmlinuz')],
    names: /kernel "fixture-k" already exists/,
  },
  {
    args: ['kernel', 'import', 'ok', '--kernel', '/does/not/exist'],
    names: /kernel \/does\/not\/exist does not exist/,
  },
  {
    args: ['kernel', 'import', 'ok', '--kernel', join(fx, 'initrd.img')],
    names: new RegExp(`${esc(join(fx, 'initrd.img'))} is neither a bzImage nor an ELF vmlinux`),
  },
  {
    args: ['kernel', 'import', 'ok', '--kernel', join(fx, 'vmlinuz'), '--modules', '/does/not/exist'],
    names: /modules \/does\/not\/exist does not exist/,
  },
  { args: ['kernel', 'import', 'ok', '--from', '/does/not/exist'], names: /from \/does\/not\/exist does not exist/ },
  { args: ['kernel', 'import', 'ok'], names: /kernel import needs kernel \(a file\) or from \(a directory\)/ },
  { args: ['kernel', 'pull', 'nosuch'], names: /kernel "nosuch" is not in the catalog/ },
  { args: ['kernel', 'pull', 'Bad Name'], names: /invalid kernel name "Bad Name"/ },
  ...(['show', 'rm'] as const).map((v) => ({
    args: ['kernel', v, 'nosuch'],
    names: /kernel "nosuch" is not installed/,
  })),
  { args: ['completion', 'fish'], names: /unknown shell "fish"/ },
  // Config files: unknown keys and wrong types, named before a daemon is started.
  { config: 'bogus_key = 1\n', args: ['vm', 'list'], names: /config\.toml: unknown key "bogus_key"/ },
  { config: '[vm_defaults]\ncpus = 2\n', args: ['vm', 'list'], names: /config\.toml: unknown key "vm_defaults\.cpus"/ },
  {
    config: '[[file_sync]]\nhost = "a"\nguest = "~/a"\nowner = "me"\n',
    args: ['vm', 'list'],
    names: /config\.toml: unknown key "file_sync\[0\]\.owner"/,
  },
  {
    config: 'log_level = 3\n',
    args: ['vm', 'list'],
    names: /config\.toml: invalid value for log_level: expected one of .*, got 3/,
  },
  {
    config: '[vm_defaults]\nvcpu = "two"\n',
    args: ['vm', 'list'],
    names: /config\.toml: invalid value for vm_defaults\.vcpu: expected an integer of at least 1, got "two"/,
  },
  {
    config: '[vm_defaults]\ndisk_size = "5X"\n',
    args: ['vm', 'list'],
    names: /config\.toml: invalid size for vm_defaults\.disk_size: "5X"/,
  },
  {
    config: '[vm_defaults]\nmemory_mib = 1e12\n',
    args: ['vm', 'list'],
    names: /config\.toml: vm_defaults\.memory_mib 1000000000000 MiB is more than this host's memory: at most \d+ MiB/,
  },
  {
    config: 'insecure_registries = ["no-port"]\n',
    args: ['vm', 'list'],
    names: /config\.toml: invalid value for insecure_registries\[0\]: .*got "no-port"/,
  },
  { config: 'vmm =\n', args: ['vm', 'list'], names: /config\.toml: invalid TOML at line 1/ },
];

interface Snapshot {
  vms: unknown;
  images: unknown;
  kernels: unknown;
  dirs: Record<string, string[]>;
}

function dirs(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const d of ['vms', 'images', 'kernels']) {
    const p = join(home.stateDir, d);
    out[d] = existsSync(p) ? readdirSync(p).sort() : [];
  }
  return out;
}

async function rows(verb: 'vm' | 'image' | 'kernel'): Promise<unknown> {
  const r = await cli([verb, 'list', '--json']);
  assert.equal(r.code, 0, `${verb} list: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

/** One after the other: parallel first commands would race to start the daemon (issue 9 item 4). */
async function snapshot(): Promise<Snapshot> {
  const vms = await rows('vm');
  const images = await rows('image');
  const kernels = await rows('kernel');
  return { vms, images, kernels, dirs: dirs() };
}

/** Stops the daemon and waits (bounded) until it is gone, so the next command starts a new one. */
async function stopDaemon(): Promise<void> {
  await cli(['daemon', 'stop']);
  for (let i = 0; i < 100; i++) {
    const st = await cli(['daemon', 'status', '--json']);
    if ((JSON.parse(st.stdout) as { running?: boolean }).running === false) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail('the daemon did not stop');
}

const configFile = join(home.root, 'config', 'banger', 'config.toml');
let baseline: Snapshot;

before(async () => {
  if (skip) return;
  mkdirSync(fx, { recursive: true });
  writeFileSync(join(fx, 'vmlinuz'), fakeBzImage('9.9.9-bad'));
  writeFileSync(join(fx, 'initrd.img'), 'not a kernel, not an ext4 image');
  const mk = sh(['mkfs.ext4', '-q', '-F', join(fx, 'rootfs.ext4'), '8M']);
  assert.equal(mk.code, 0, mk.stderr);
  // What already exists, for the "already exists" cases: a kernel and an image that uses it.
  let r = await cli([
    'kernel',
    'import',
    'fixture-k',
    '--kernel',
    join(fx, 'vmlinuz'),
    '--initrd',
    join(fx, 'initrd.img'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['image', 'register', 'fixture-img', '--rootfs', join(fx, 'rootfs.ext4'), '--kernel-ref', 'fixture-k']);
  assert.equal(r.code, 0, r.stderr);
  // A bundle whose manifest (first entry) names fixture-img.
  const rootfs = Buffer.alloc(64 * 1024);
  const manifest = {
    format: 1,
    name: 'fixture-img',
    distro: 'test',
    arch: 'x86_64',
    kernel_ref: 'fixture-k',
    rootfs_bytes: rootfs.length,
    assets_version: 1,
    created_at: '2024-01-01T00:00:00Z',
  };
  const bundle = await tarZst([
    { name: 'manifest.json', body: JSON.stringify(manifest) },
    { name: 'rootfs.ext4', body: rootfs },
  ]);
  assert.notEqual(sha256Hex(bundle), HEX);
  writeFileSync(join(fx, 'taken.tar.zst'), bundle);
  baseline = await snapshot();
});

after(async () => {
  rmSync(configFile, { force: true });
  await home.cleanup();
});

for (const c of CASES) {
  const title = `${c.config ? `config ${JSON.stringify(c.config)}: ` : ''}banger ${c.args.map((a) => (a === '' || /\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
  test(title, { skip }, async () => {
    if (c.config !== undefined) {
      await stopDaemon();
      mkdirSync(join(configFile, '..'), { recursive: true });
      writeFileSync(configFile, c.config);
    }
    let r;
    try {
      r = await cli(c.args);
    } finally {
      if (c.config !== undefined) writeFileSync(configFile, TEST_CONFIG);
    }
    assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
    assert.equal(r.code, c.code ?? 1, `exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, /^banger: /m);
    assert.match(r.stderr, c.names);
    assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
    assert.doesNotMatch(
      r.stderr,
      /pulling kernel debian-bookworm-cloud|building image debian-bookworm/,
      'no default kernel or image pull',
    );
    assert.deepEqual(dirs(), baseline.dirs, 'no new dirs under vms/, images/, kernels/');
    assert.deepEqual(home.qemuPids(), [], 'no qemu process');
  });
}

test('after the corpus: no new rows in vm, image or kernel list, and no leftovers', { skip }, async () => {
  assert.deepEqual(await snapshot(), baseline);
  assert.deepEqual(readdirSync(join(home.stateDir, 'tmp')), [], 'nothing staged under tmp/');
});
