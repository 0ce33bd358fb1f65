import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { tarOf } from '../../../test/helpers/registry.js';
import { AppError } from '../../errors.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { nullLogger, quietContext, type Logger } from '../context.js';
import { NodeRunner } from '../../system/node-runner.js';
import { RootfsBuilder, type LayerInput } from './pipeline.js';

/*
 * RootfsBuilder: real tar parsing, merging and ext4 writing into a temp dir
 * (no mkfs.ext4, no debugfs pass: the fake runner expects no call), read back
 * with debugfs and checked with e2fsck.
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
  const r = new FakeRunner();
  t.after(() => r.assertNoUnexpected());
  return r;
}

const host = new NodeRunner();
const debugfs = async (img: string, cmd: string): Promise<string> =>
  (await host.check(['debugfs', '-R', cmd, img])).stdout;
const fsckClean = async (img: string): Promise<void> => {
  const res = await host.run(['e2fsck', '-fn', img]);
  assert.equal(res.code, 0, `${img}: ${res.stdout}`);
};

test('builds rootfs and work-seed straight from the layers, with the guest assets, and no host tree', async (t) => {
  const dir = staging(t);
  const r = runner(t);
  const b = new RootfsBuilder(r, nullLogger, false, 2 ** 30);
  const res = await b.build(dir, [await layer(BOOTABLE)], {}, quietContext(), new AbortController().signal);
  assert.equal(res.distro, 'debian');
  assert.equal(res.hasSshd, true);
  assert.equal(res.hasSystemd, true);
  assert.equal(res.workSeed, true);
  assert.equal(res.sizeBytes, 2 ** 30);
  assert.deepEqual(r.calls, [], 'no mkfs.ext4, no debugfs');
  assert.deepEqual(readdirSync(dir).sort(), ['rootfs.ext4', 'work-seed.ext4']);
  const rootfs = join(dir, 'rootfs.ext4');
  const seed = join(dir, 'work-seed.ext4');
  await fsckClean(rootfs);
  await fsckClean(seed);
  assert.equal(await debugfs(rootfs, 'cat /usr/sbin/sshd'), 'sshd\n');
  assert.match(await debugfs(rootfs, 'cat /usr/local/libexec/banger-bootstrap'), /banger guest bootstrap/);
  assert.match(await debugfs(rootfs, 'stat /usr/local/libexec/banger-agent'), /Mode:\s+0755/);
  assert.match(
    await debugfs(rootfs, 'stat /etc/systemd/system/sysinit.target.wants/banger-agent.service'),
    /Type: symlink/,
  );
  assert.match(await debugfs(rootfs, 'stat /tmp'), /Mode:\s+01777/, 'missing mount points are made');
  assert.equal(await debugfs(seed, 'cat /.bashrc'), '# rc\n');
  assert.match((await host.check(['dumpe2fs', '-h', seed])).stdout, /Filesystem volume name:\s+work/);
});

test("os-release and sshd are found through the image's own symlinks", async (t) => {
  const dir = staging(t);
  const b = new RootfsBuilder(runner(t), nullLogger, false, 2 ** 30);
  const tar = await tarOf({ 'usr/lib/os-release': 'ID="alpine"\n', 'usr/bin/sshd': 'x', 'sbin/init': 'x' });
  const p = pack();
  p.entry({ name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' });
  p.entry({ name: 'usr/sbin', type: 'symlink', linkname: 'bin' });
  p.finalize();
  const parts: Buffer[] = [];
  for await (const c of p) parts.push(c as Buffer);
  const links = Buffer.concat(parts);
  const built = await b.build(
    dir,
    [
      { label: 'l1', open: async () => ({ stream: Readable.from([tar]) }) },
      { label: 'l2', open: async () => ({ stream: Readable.from([links]) }) },
    ],
    {},
    quietContext(),
    new AbortController().signal,
  );
  assert.equal(built.distro, 'alpine');
  assert.equal(built.hasSshd, true);
  assert.equal(built.hasSystemd, false);
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
  test(`refused: ${c.name}; no image is left`, async (t) => {
    const dir = staging(t);
    const b = new RootfsBuilder(runner(t), nullLogger, false, 2 ** 30);
    await assert.rejects(
      b.build(dir, [await layer(c.files)], { sizeBytes: c.size }, quietContext(), new AbortController().signal),
      (e: unknown) =>
        e instanceof AppError && e.code === 'bad_request' && c.re.test(e.message) && (e.hint ?? '') !== '',
    );
    assert.deepEqual(readdirSync(dir), []);
  });
}

test('layers larger than max_unpacked_size are refused, naming the setting', async (t) => {
  const dir = staging(t);
  const b = new RootfsBuilder(runner(t), nullLogger, false, 4096);
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
  assert.deepEqual(readdirSync(dir), []);
});

test('a /root too big to keep only loses the seed, with a warning', async (t) => {
  const dir = staging(t);
  const warnings: string[] = [];
  const log: Logger = { ...nullLogger, warn: (msg) => warnings.push(msg) };
  const b = new RootfsBuilder(runner(t), log, false, 2 ** 30);
  // A stream of zeros: the writer leaves them as holes, so this is cheap.
  const size = 257 * 1048576;
  const big = pack();
  const entry = big.entry({ name: 'root/big', size }, () => big.finalize());
  void (async () => {
    const zeros = Buffer.alloc(1048576);
    for (let n = 0; n < size; n += zeros.length) if (!entry.write(zeros)) await once(entry, 'drain');
    entry.end(() => undefined);
  })();
  const res = await b.build(
    dir,
    [
      await layer(BOOTABLE),
      { label: 'big', open: async () => ({ stream: Readable.from(big) }), sizeHint: async () => size + 2048 },
    ],
    {},
    quietContext(),
    new AbortController().signal,
  );
  assert.equal(res.workSeed, false);
  assert.equal(existsSync(join(dir, 'work-seed.ext4')), false);
  assert.match(warnings.join('\n'), /work-seed build failed/);
});
