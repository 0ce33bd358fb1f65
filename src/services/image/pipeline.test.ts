import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { tarOf } from '../../../test/helpers/registry.js';
import { AppError } from '../../errors.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { nullLogger, quietContext, type Logger } from '../context.js';
import { RootfsBuilder, type LayerInput } from './pipeline.js';

/*
 * RootfsBuilder against the fake runner: real tar parsing and tree
 * flattening into a temp dir, mkfs.ext4 and debugfs faked (the integration
 * tier runs them for real).
 */

const BOOTABLE = {
  'lib/systemd/systemd': 'init\n',
  'usr/sbin/sshd': 'sshd\n',
  'etc/os-release': 'ID=debian\nVERSION_ID=12\n',
  'root/.bashrc': '# rc\n',
};

async function layer(files: Record<string, string>, label = 'layer 1/1'): Promise<LayerInput> {
  const tar = await tarOf(files);
  return { label, open: async () => ({ stream: Readable.from([tar]) }) };
}

function staging(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rootfs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function runner(t: TestContext): FakeRunner {
  const r = new FakeRunner().on('mkfs.ext4', {}).on('debugfs', {});
  t.after(() => r.assertNoUnexpected());
  return r;
}

/** mkfs.ext4 calls, by the label they give the filesystem. */
const mkfsLabels = (r: FakeRunner): string[] => r.callsTo('mkfs.ext4').map((a) => a[a.indexOf('-L') + 1] ?? '?');

test('builds rootfs and work-seed from the layers, reports what it found, and removes its tree', async (t) => {
  const dir = staging(t);
  const r = runner(t);
  const b = new RootfsBuilder(r, nullLogger, false, 2 ** 30);
  const res = await b.build(dir, [await layer(BOOTABLE)], {}, quietContext(), new AbortController().signal);
  assert.equal(res.distro, 'debian');
  assert.equal(res.hasSshd, true);
  assert.equal(res.hasSystemd, true);
  assert.equal(res.workSeed, true);
  assert.ok(res.sizeBytes > res.contentBytes);
  assert.deepEqual(mkfsLabels(r), ['rootfs', 'work']);
  const rootfsArgv = r.callsTo('mkfs.ext4')[0] ?? [];
  assert.ok(rootfsArgv.includes(join(dir, 'tree')), `mkfs.ext4 -d the flattened tree: ${rootfsArgv.join(' ')}`);
  const ownership = r.calls.filter(
    (c) => c.argv[0] === 'debugfs' && /sif \S*\/etc\/os-release\S* uid/.test(String(c.input ?? '')),
  );
  assert.equal(ownership.length, 1, 'not root: ownership is set with one debugfs pass');
  assert.equal(existsSync(join(dir, 'tree')), false, 'the tree is removed');
});

test('running as root sets ownership while extracting: no debugfs ownership pass', async (t) => {
  const dir = staging(t);
  const r = runner(t);
  const b = new RootfsBuilder(r, nullLogger, true, 2 ** 30);
  await b.build(dir, [await layer(BOOTABLE)], {}, quietContext(), new AbortController().signal);
  const ownership = r.calls.filter(
    (c) => c.argv[0] === 'debugfs' && /sif \S*\/etc\/os-release\S* uid/.test(String(c.input ?? '')),
  );
  assert.deepEqual(ownership, []);
});

test('an image without systemd is built (banger-init runs it) and recorded as such', async (t) => {
  const dir = staging(t);
  const r = runner(t);
  const b = new RootfsBuilder(r, nullLogger, false, 2 ** 30);
  const built = await b.build(
    dir,
    [await layer({ 'etc/os-release': 'ID=alpine\n', 'sbin/init': 'x' })],
    {},
    quietContext(),
    new AbortController().signal,
  );
  assert.equal(built.hasSystemd, false);
  assert.ok(r.callsTo('mkfs.ext4').length > 0, 'the rootfs is written');
});

const refusals: { name: string; files: Record<string, string>; size?: number; re: RegExp }[] = [
  {
    name: '/root is a file',
    files: { 'lib/systemd/systemd': 'init\n', 'etc/os-release': 'ID=debian\n', root: 'not a dir' },
    re: /the image's \/root is a file, not a directory/,
  },
  { name: 'size too small', files: BOOTABLE, size: 1024 * 1024, re: /size 1048576 bytes is too small/ },
];

for (const c of refusals) {
  test(`refused before mkfs: ${c.name}; the tree is removed`, async (t) => {
    const dir = staging(t);
    const r = runner(t);
    const b = new RootfsBuilder(r, nullLogger, false, 2 ** 30);
    await assert.rejects(
      b.build(dir, [await layer(c.files)], { sizeBytes: c.size }, quietContext(), new AbortController().signal),
      (e: unknown) =>
        e instanceof AppError && e.code === 'bad_request' && c.re.test(e.message) && (e.hint ?? '') !== '',
    );
    assert.deepEqual(r.callsTo('mkfs.ext4'), []);
    assert.equal(existsSync(join(dir, 'tree')), false);
  });
}

test('layers larger than max_unpacked_size are refused, naming the setting', async (t) => {
  const dir = staging(t);
  const r = runner(t);
  const b = new RootfsBuilder(r, nullLogger, false, 4096);
  await assert.rejects(
    b.build(
      dir,
      [await layer({ ...BOOTABLE, 'big.bin': 'x'.repeat(64 * 1024) })],
      {},
      quietContext(),
      new AbortController().signal,
    ),
    (e: unknown) => e instanceof AppError && /max_unpacked_size/.test(`${e.message} ${e.hint ?? ''}`),
  );
  assert.deepEqual(r.callsTo('mkfs.ext4'), []);
});

test('a failing mkfs.ext4 fails the build and leaves no tree', async (t) => {
  const dir = staging(t);
  const r = runner(t).on('mkfs.ext4', { code: 1, stderr: 'mkfs.ext4: No space left on device' });
  const b = new RootfsBuilder(r, nullLogger, false, 2 ** 30);
  await assert.rejects(
    b.build(dir, [await layer(BOOTABLE)], {}, quietContext(), new AbortController().signal),
    (e: unknown) => e instanceof AppError && /mkfs\.ext4/.test(e.message),
  );
  assert.equal(existsSync(join(dir, 'tree')), false);
});

test('a failing work-seed mkfs only loses the seed, with a warning', async (t) => {
  const dir = staging(t);
  const r = runner(t).on((a) => a[0] === 'mkfs.ext4' && a.includes('work'), { code: 1, stderr: 'boom' });
  const warnings: string[] = [];
  const log: Logger = { ...nullLogger, warn: (msg) => warnings.push(msg) };
  const b = new RootfsBuilder(r, log, false, 2 ** 30);
  const res = await b.build(dir, [await layer(BOOTABLE)], {}, quietContext(), new AbortController().signal);
  assert.equal(res.workSeed, false);
  assert.equal(existsSync(join(dir, 'work-seed.ext4')), false);
  assert.match(warnings.join('\n'), /work-seed build failed/);
});
