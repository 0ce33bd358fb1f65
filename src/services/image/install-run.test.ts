import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { AppError } from '../../errors.js';
import type { ImageRow } from '../../store/images.js';
import { nullLogger, quietContext } from '../context.js';
import { installSshd, type GuestResult, type InstallVmOps } from './install-run.js';

/*
 * installSshd against a fake VM side (what the guest answers is scripted) and
 * the fake runner (qemu-img convert copies the "root disk"): the order of the
 * steps, the result stored as the image, and that every failure deletes the VM
 * and leaves the image's files as they were.
 */

type Answer = (argv: string[]) => GuestResult;

function setup(t: TestContext, answer: Answer, opts: { createFails?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'install-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs.ext4');
  writeFileSync(rootfs, 'pulled rootfs');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'img', has_sshd: false, has_systemd: false }));
  const disk = join(dir, 'vm-root.qcow2');
  writeFileSync(disk, 'installed rootfs');
  const calls: string[] = [];
  const vms: InstallVmOps = {
    create: async (image, vm) => {
      calls.push(`create ${image} ${vm.replace(/[0-9a-f]{8}$/, 'X')}`);
      if (opts.createFails) throw new AppError('operation_failed', 'boot failed');
    },
    exec: async (_vm, argv) => {
      calls.push(`exec ${argv.at(-1)?.slice(0, 20) ?? ''}`);
      return answer(argv);
    },
    stop: async () => void calls.push('stop'),
    rootDisk: () => ({ path: disk, format: 'qcow2' }),
    delete: async () => {
      calls.push('delete');
      if (opts.createFails) throw new AppError('not_found', 'no such VM');
    },
  };
  const runner = new FakeRunner()
    .on(
      (a) => a[0] === 'qemu-img' && a[1] === 'convert',
      (a) => {
        assert.deepEqual(a.slice(2, 6), ['-f', 'qcow2', '-O', 'raw']);
        copyFileSync(a.at(-2) as string, a.at(-1) as string);
        return {};
      },
    )
    .on('e2fsck', {});
  t.after(() => runner.assertNoUnexpected());
  const image: ImageRow = {
    id: 'i1',
    name: 'img',
    source: 'test',
    managed: true,
    dir,
    rootfsPath: rootfs,
    workSeedPath: undefined,
    kernelName: 'k1',
    distro: 'debian',
    sizeBytes: 1,
    assetsVersion: 3,
    createdAt: 'now',
  };
  const unchanged = (): void => {
    assert.equal(readFileSync(rootfs, 'utf8'), 'pulled rootfs');
    assert.equal(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).has_sshd, false);
    assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'rootfs.ext4', 'vm-root.qcow2']);
  };
  return { deps: { vms, runner, log: nullLogger }, image, calls, rootfs, dir, unchanged };
}

const ok = (stdout = ''): GuestResult => ({ code: 0, stdout, stderr: '' });
const debian: Answer = (argv) => {
  const script = argv.at(-1) ?? '';
  if (script.includes('os-release')) return ok('PRETTY_NAME="Debian"\nID=debian\n');
  if (script.startsWith('apt-get update')) return ok('installed\n');
  return ok('sshd\nsystemd\n');
};

test("installSshd: os-release picks apt; the stopped VM's root disk becomes the rootfs with has_sshd/has_systemd; the VM goes", async (t) => {
  const s = setup(t, debian);
  assert.deepEqual(await installSshd(s.deps, s.image, quietContext()), { hasSshd: true, hasSystemd: true });
  assert.deepEqual(s.calls, [
    'create img install-sshd-X',
    'exec for f in /etc/os-rel',
    'exec apt-get update && DE',
    'exec for p in /usr/sbin/s',
    'stop',
    'delete',
  ]);
  assert.equal(readFileSync(s.rootfs, 'utf8'), 'installed rootfs');
  const m = JSON.parse(readFileSync(join(s.dir, 'manifest.json'), 'utf8'));
  assert.deepEqual([m.name, m.has_sshd, m.has_systemd], ['img', true, true]);
  assert.deepEqual(readdirSync(s.dir).sort(), ['manifest.json', 'rootfs.ext4', 'vm-root.qcow2']);
});

const failures: { name: string; answer: Answer; re: RegExp; code: string; createFails?: boolean }[] = [
  {
    name: 'a failing install (its exit status and stderr are named)',
    answer: (argv) =>
      (argv.at(-1) ?? '').startsWith('apt-get')
        ? { code: 100, stdout: '', stderr: 'E: Unable to locate package openssh-server' }
        : debian(argv),
    re: /apt install in the throwaway VM failed \(exit 100\): E: Unable to locate package openssh-server/,
    code: 'operation_failed',
  },
  {
    name: 'an install after which there is no sshd',
    answer: (argv) => ((argv.at(-1) ?? '').startsWith('for p') ? ok('systemd\n') : debian(argv)),
    re: /the apt install finished but the guest has no sshd/,
    code: 'operation_failed',
  },
  {
    name: 'a distribution whose package manager is unknown',
    answer: () => ok('ID=gentoo\n'),
    re: /does not know the package manager of distribution "gentoo"/,
    code: 'bad_request',
  },
  {
    name: 'no os-release',
    answer: () => ({ code: 1, stdout: '', stderr: "cat: can't open" }),
    re: /has no \/etc\/os-release/,
    code: 'operation_failed',
  },
  { name: 'a VM that does not boot', answer: debian, re: /boot failed/, code: 'operation_failed', createFails: true },
];

for (const c of failures) {
  test(`installSshd: ${c.name} is refused; the VM is deleted and the image left as it was`, async (t) => {
    const s = setup(t, c.answer, { createFails: c.createFails });
    await assert.rejects(
      installSshd(s.deps, s.image, quietContext()),
      (e: unknown) => e instanceof AppError && e.code === c.code && c.re.test(e.message),
    );
    assert.equal(s.calls.at(-1), 'delete');
    assert.ok(!s.calls.includes('stop'), 'a failed install is not stopped gracefully: delete kills it');
    s.unchanged();
  });
}
