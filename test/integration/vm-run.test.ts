/**
 * Integration (network: user mode with restrict=on, loopback only): boots real
 * VMs under qemu through the real CLI and daemon in an isolated banger home.
 * The first run pulls the Debian cloud kernel through apt and builds the
 * default image with mmdebstrap.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sh, TestHome } from '../helpers/home.js';

const missing = ['qemu-system-x86_64', 'mmdebstrap', 'mkfs.ext4', 'debugfs', 'ssh', 'apt-get', 'depmod'].filter(
  (b) => sh(['sh', '-c', `command -v ${b} || test -x /usr/sbin/${b} || test -x /sbin/${b}`]).code !== 0,
);
const skip = missing.length ? `missing host tools: ${missing.join(', ')}` : false;

let home: TestHome;

before(() => {
  home = new TestHome();
});

after(async () => {
  await home.cleanup();
});

function assertNothingLeft(): void {
  assert.deepEqual(home.qemuPids(), [], 'no qemu process is left');
  const vmsDir = join(home.stateDir, 'vms');
  assert.deepEqual(readdirSync(vmsDir), [], 'no VM directory is left');
  const sockets = readdirSync(home.runtimeDir).filter((f) => f.endsWith('.qmp'));
  assert.deepEqual(sockets, [], 'no QMP socket is left');
}

test('a fresh home lists no VMs and the socket is 0600', { skip }, async () => {
  const r = await home.banger(['vm', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
  const mode = statSync(join(home.runtimeDir, 'bangerd.sock')).mode & 0o777;
  assert.equal(mode, 0o600);
  assert.equal(statSync(home.runtimeDir).mode & 0o777, 0o700);
});

test('in a fresh home the distribution kernel is listed as available', { skip }, async () => {
  const r = await home.banger(['kernel', 'list', '--available', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const e = (JSON.parse(r.stdout) as { name: string; state: string }[]).find((k) => k.name === 'debian-bookworm-cloud');
  assert.equal(e?.state, 'available');
});

test('doctor --json is valid JSON and warns about software emulation without KVM', { skip }, async () => {
  const r = await home.banger(['doctor', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string; detail: string }[] };
  assert.equal(report.ok, true);
  const hv = report.checks.find((c) => c.name === 'hardware virtualization');
  assert.ok(hv);
  const kvmUsable = /\b(vmx|svm)\b/.test(sh(['cat', '/proc/cpuinfo']).stdout) && sh(['test', '-w', '/dev/kvm']).code === 0;
  if (!kvmUsable) {
    assert.equal(hv.status, 'WARN');
    assert.match(hv.detail, /TCG|software emulation/);
  }
});

for (const [args, pattern] of [
  [['--vcpu', '0'], /invalid --vcpu 0/],
  [['--name', 'Bad_Name'], /character "B" at position 1/],
  [['--memory', '-1'], /invalid --memory/],
  [['--disk-size', '1Q'], /invalid size for --disk-size/],
] as const) {
  test(`vm run ${args.join(' ')} fails clearly with 125 and leaves nothing`, { skip }, async () => {
    const r = await home.banger(['vm', 'run', ...args, '--rm', '--', 'true']);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /hint:/);
    const list = await home.banger(['vm', 'list', '--json']);
    assert.deepEqual(JSON.parse(list.stdout), []);
  });
}

test('vm run --rm passes output and exit status through and leaves nothing behind', { skip }, async () => {
  const r = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'echo hi; exit 42']);
  assert.equal(r.code, 42, `stderr: ${r.stderr}\ndaemon log tail: ${home.daemonLog().slice(-3000)}`);
  assert.equal(r.stdout, 'hi\n');
  assert.match(r.stderr, /spec: \d+ vcpu \| \d+ MiB \| \S+ disk/);
  assert.match(r.stderr, /ready in/);
  const list = await home.banger(['vm', 'list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout), []);
  assertNothingLeft();
});

test('the guest is Debian 12 with the distribution dotfiles in /root; image and kernel are reused', { skip }, async () => {
  const r = await home.banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'cat /etc/os-release; ls -a /root']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /VERSION_ID="12"/);
  assert.match(r.stdout, /^\.bashrc$/m);
  assert.doesNotMatch(r.stderr, /\[image\]|\[kernel\]/, 'no rebuild on the second run');
  assertNothingLeft();
});

test('the pulled distribution kernel: listed as pulled, shown with initramfs, modules and sha256; no second pull without --force', { skip }, async () => {
  const avail = await home.banger(['kernel', 'list', '--available', '--json']);
  const e = (JSON.parse(avail.stdout) as { name: string; state: string }[]).find((k) => k.name === 'debian-bookworm-cloud');
  assert.equal(e?.state, 'pulled');
  const show = await home.banger(['kernel', 'show', 'debian-bookworm-cloud', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const k = JSON.parse(show.stdout) as { sha256: string; modules: number; initrd_kind: string; initramfs_modules: string[]; format: string };
  assert.match(k.sha256, /^[0-9a-f]{64}$/);
  assert.ok(k.modules > 500, `module count ${k.modules}`);
  assert.equal(k.initrd_kind, 'banger');
  assert.ok(k.initramfs_modules.some((m) => m.endsWith('virtio_blk.ko')));
  assert.equal(k.format, 'bzImage');
  const again = await home.banger(['kernel', 'pull', 'debian-bookworm-cloud']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already pulled[\s\S]*--force/);
});

test('arguments reach the guest command unchanged', { skip }, async () => {
  const r = await home.banger(['vm', 'run', '--rm', '--', 'printf', '%s\\n', 'a b', '$HOME', "x'y", '']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "a b\n$HOME\nx'y\n\n");
});

test('two VMs from the same image present different sshd host keys', { skip }, async () => {
  const names = ['hk-one', 'hk-two'];
  try {
    for (const n of names) {
      const r = await home.banger(['vm', 'run', '-d', '--name', n]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), n);
    }
    const keys = names.map((n) => {
      const r = sh(['ssh-keygen', '-F', `${n}.vm`, '-f', join(home.stateDir, 'ssh', 'known_hosts')]);
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${n}.vm `));
      assert.ok(line, `known_hosts has an entry keyed by ${n}.vm`);
      return line.split(' ').slice(1).join(' ');
    });
    assert.notEqual(keys[0], keys[1]);
    const ssh = await home.banger(['vm', 'ssh', 'hk-one', '--', 'hostname']);
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), 'hk-one');
  } finally {
    const del = await home.banger(['vm', 'delete', ...names]);
    assert.equal(del.code, 0, del.stderr);
  }
  const r = sh(['ssh-keygen', '-F', 'hk-one.vm', '-f', join(home.stateDir, 'ssh', 'known_hosts')]);
  assert.equal(r.stdout.trim(), '', 'known_hosts entry removed on delete');
  assertNothingLeft();
});

test('removing the kernel leaves the image bootable (the image keeps its own copy)', { skip }, async () => {
  const rm = await home.banger(['kernel', 'rm', 'debian-bookworm-cloud']);
  assert.equal(rm.code, 0, rm.stderr);
  const r = await home.banger(['vm', 'run', '--rm', '--', 'uname', '-r']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cloud-amd64/);
  assert.doesNotMatch(r.stderr, /\[kernel\]/, 'the kernel was not pulled again');
  assertNothingLeft();
});
