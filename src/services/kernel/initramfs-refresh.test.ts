import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { parseCpioNewc } from '../../kernel/cpio.js';
import { INITRAMFS_VERSION } from '../../kernel/initramfs.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { guestBinary, kernelFiles } from '../../system/paths.js';
import { initramfsStale, refreshInitramfs } from './initramfs-refresh.js';
import { readKernelDir, type KernelManifest } from './manifest.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../../../test/fixtures/modules/${name}`, import.meta.url), 'utf8');

const RELEASE = '6.1.0-56-cloud-amd64';

const manifest = (over: Partial<KernelManifest> = {}): KernelManifest => ({
  name: 'debian-bookworm-cloud',
  distro: 'debian',
  arch: 'x86_64',
  version: RELEASE,
  format: 'bzImage',
  sha256: '0'.repeat(64),
  source: 'apt:linux-image-cloud-amd64',
  imported_at: '2026-01-01T00:00:00.000Z',
  initrd: 'banger',
  modules: 39,
  has_modules_disk: true,
  traits: { pvhNote: false, virtioMmio: 'module' },
  initramfs_modules: ['kernel/drivers/virtio/virtio_mmio.ko'],
  ...over,
});

test('initramfsStale: only banger initramfs older than this banger is regenerated', () => {
  const cases: { m: Partial<KernelManifest>; stale: boolean }[] = [
    { m: {}, stale: true }, // assembled before versions were recorded: version 1
    { m: { initramfs_version: 1 }, stale: true },
    { m: { initramfs_version: INITRAMFS_VERSION }, stale: false },
    { m: { initramfs_version: INITRAMFS_VERSION + 1 }, stale: false },
    { m: { initrd: 'external' }, stale: false },
    { m: { initrd: 'none' }, stale: false },
  ];
  for (const c of cases) assert.equal(initramfsStale(manifest(c.m)), c.stale, JSON.stringify(c.m));
});

/** A fake debugfs over a modules disk holding the fixture modules.dep/modules.builtin; each module's bytes are its path. */
function fakeModulesDisk(): FakeRunner {
  const files: Record<string, string> = {
    '/modules.dep': fixture('modules.dep'),
    '/modules.builtin': fixture('modules.builtin'),
  };
  return new FakeRunner().on('debugfs', (argv, opts) => {
    if (argv[1] === '-R') {
      const path = /^cat "(.*)"$/.exec(argv[2] ?? '')?.[1] ?? '';
      const body = files[path];
      return body === undefined
        ? { stderr: `${path}: File not found by ext2_lookup \n` }
        : { stdout: body, stderr: 'debugfs 1.47.0 (5-Feb-2023)\n' };
    }
    assert.deepEqual(argv.slice(0, 3), ['debugfs', '-f', '-']);
    for (const line of String(opts.input).split('\n').filter(Boolean)) {
      const m = /^dump "\/(.+)" "(.+)"$/.exec(line);
      assert.ok(m, line);
      writeFileSync(m[2] as string, `module:${m[1] as string}`);
    }
    return { stdout: String(opts.input).replace(/^/gm, 'debugfs: ') };
  });
}

test(
  'an initramfs from an older banger is regenerated from the modules disk with virtio_console; a hard-linked copy keeps its files',
  {
    skip: existsSync(guestBinary('banger-init')) ? false : 'needs npm run build (dist/guest/banger-init)',
  },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'banger-initramfs-'));
    try {
      const dir = join(root, 'kernel');
      const copy = join(root, 'image-kernel');
      mkdirSync(dir);
      mkdirSync(copy);
      writeFileSync(join(dir, kernelFiles.bzImage), 'kernel');
      writeFileSync(join(dir, kernelFiles.initrd), 'old initramfs');
      writeFileSync(join(dir, kernelFiles.modulesDisk), 'ext4');
      writeFileSync(join(dir, kernelFiles.manifest), JSON.stringify(manifest()));
      for (const f of [kernelFiles.initrd, kernelFiles.manifest]) linkSync(join(dir, f), join(copy, f));

      const runner = fakeModulesDisk();
      const scratch = join(root, 'scratch');
      const files = await refreshInitramfs(await readKernelDir(dir), scratch, runner);

      assert.equal(files.manifest.initramfs_version, INITRAMFS_VERSION);
      assert.deepEqual(
        await readKernelDir(dir).then((f) => f.manifest),
        files.manifest,
        'the manifest on disk says so',
      );
      const order = files.manifest.initramfs_modules ?? [];
      const at = (m: string): number => order.indexOf(m);
      assert.ok(at('kernel/drivers/char/virtio_console.ko') >= 0, `virtio_console is loaded: ${order.join(' ')}`);
      assert.ok(at('kernel/drivers/virtio/virtio.ko') < at('kernel/drivers/char/virtio_console.ko'), 'deps first');
      assert.ok(at('kernel/drivers/virtio/virtio_mmio.ko') >= 0);

      const entries = parseCpioNewc(gunzipSync(readFileSync(join(dir, kernelFiles.initrd))));
      const byPath = new Map(entries.map((e) => [e.path, e]));
      assert.ok(byPath.has(`lib/modules/${RELEASE}/kernel/drivers/char/virtio_console.ko`));
      assert.ok(byPath.has('init'));

      // The image's hard-linked copy is untouched until it is refreshed itself; scratch is gone.
      assert.equal(readFileSync(join(copy, kernelFiles.initrd), 'utf8'), 'old initramfs');
      assert.equal(
        (JSON.parse(readFileSync(join(copy, kernelFiles.manifest), 'utf8')) as KernelManifest).initramfs_version,
        undefined,
      );
      assert.equal(existsSync(scratch), false);

      // Current now: nothing runs again.
      const calls = runner.calls.length;
      await refreshInitramfs(await readKernelDir(dir), scratch, runner);
      assert.equal(runner.calls.length, calls);
      runner.assertNoUnexpected();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test('a kernel whose modules disk lacks modules.dep fails with a hint and leaves its files as they were', async () => {
  const root = mkdtempSync(join(tmpdir(), 'banger-initramfs-'));
  try {
    writeFileSync(join(root, kernelFiles.bzImage), 'kernel');
    writeFileSync(join(root, kernelFiles.initrd), 'old initramfs');
    writeFileSync(join(root, kernelFiles.modulesDisk), 'ext4');
    writeFileSync(join(root, kernelFiles.manifest), JSON.stringify(manifest()));
    const runner = new FakeRunner().on('debugfs', { stderr: '/modules.dep: File not found by ext2_lookup \n' });
    await assert.rejects(
      refreshInitramfs(await readKernelDir(root), join(root, 'scratch'), runner),
      (e: Error & { hint?: string }) => {
        assert.match(e.message, /has no modules\.dep/);
        assert.match(e.hint ?? '', /kernel pull --force/);
        return true;
      },
    );
    assert.equal(readFileSync(join(root, kernelFiles.initrd), 'utf8'), 'old initramfs');
    assert.equal(existsSync(join(root, 'scratch')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
