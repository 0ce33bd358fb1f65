/**
 * Integration (no network, no VM): image content is attacker-controlled. The
 * shared rootfs pipeline and the bundle work-seed run with the real mkfs.ext4
 * and debugfs on crafted inputs, and must never read, follow or write a host
 * path the image names.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { pack } from 'tar-stream';
import { AppError } from '../../src/errors.js';
import { nullLogger, quietContext } from '../../src/services/context.js';
import { RootfsBuilder, type LayerInput } from '../../src/services/image/pipeline.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { sh } from '../helpers/home.js';

const work = mkdtempSync(join(tmpdir(), 'banger-it-untrusted-'));
after(() => rmSync(work, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
let seq = 0;

interface Entry {
  name: string;
  type?: 'file' | 'symlink' | 'directory' | 'link';
  linkname?: string;
  body?: string;
  mode?: number;
}

async function layer(entries: Entry[]): Promise<LayerInput> {
  const p = pack();
  for (const { body, ...h } of entries) p.entry({ mode: h.type === 'directory' ? 0o755 : 0o644, ...h }, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  return { label: 'layer 1/1', open: async () => ({ stream: Readable.from([tar]) }) };
}

/** The minimum the pipeline accepts: an init. */
const BASE: Entry[] = [
  { name: 'usr/lib/systemd/systemd', body: '#!/bin/true\n', mode: 0o755 },
  { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
];

function builder(maxUnpackedBytes = 1 << 30): RootfsBuilder {
  return new RootfsBuilder(new NodeRunner(), nullLogger, isRoot, maxUnpackedBytes);
}

function staging(): string {
  return mkdtempSync(join(work, `s${seq++}-`));
}

test(
  'image files named through symlinks to host paths are never read: a FIFO does not hang the pull, a host file does not leak',
  { timeout: 60_000 },
  async () => {
    const fifo = join(work, 'host-fifo');
    assert.equal(sh(['mkfifo', fifo]).code, 0);
    const hostFile = join(work, 'host-os-release');
    writeFileSync(hostFile, 'ID=leaked-from-host\n');
    for (const target of [fifo, hostFile, '/dev/zero']) {
      const res = await builder().build(
        staging(),
        [await layer([...BASE, { name: 'etc/os-release', type: 'symlink', linkname: target }])],
        {},
        quietContext(),
        new AbortController().signal,
      );
      assert.equal(res.distro, 'unknown', `os-release -> ${target}`);
    }
    // A link inside the image is followed the way the guest would.
    const res = await builder().build(
      staging(),
      [
        await layer([
          ...BASE,
          { name: 'usr/lib/os-release', body: 'NAME=x\nID=inside\n' },
          { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' },
        ]),
      ],
      {},
      quietContext(),
      new AbortController().signal,
    );
    assert.equal(res.distro, 'inside');
    assert.equal(readFileSync(hostFile, 'utf8'), 'ID=leaked-from-host\n');
  },
);

test('an init or sshd that exists only through a link out of the image does not count', async () => {
  // lib -> / would make lib/systemd/systemd the host's systemd.
  const entries: Entry[] = [
    { name: 'lib', type: 'symlink', linkname: '/lib' },
    { name: 'usr/sbin', type: 'directory' },
    { name: 'sbin', type: 'symlink', linkname: '/usr/sbin' },
  ];
  const res = await builder().build(
    staging(),
    [await layer(entries)],
    {},
    quietContext(),
    new AbortController().signal,
  );
  assert.equal(res.hasSystemd, false, 'lib -> / does not lend the image the host systemd');
  assert.equal(res.hasSshd, false, 'sbin -> /usr/sbin does not lend the image the host sshd');
});

test('max_unpacked_size stops a layer that unpacks to more, naming the layer', async () => {
  const big: Entry[] = [...BASE, { name: 'big', body: 'x'.repeat(2 * 1048576) }];
  const dir = staging();
  await assert.rejects(
    builder(1048576).build(dir, [await layer(big)], {}, quietContext(), new AbortController().signal),
    (e: unknown) => {
      assert.ok(e instanceof AppError, String(e));
      assert.equal(e.code, 'bad_request');
      assert.match(e.message, /the image content is larger than 1048576 bytes \(reading layer 1\/1\)/);
      return true;
    },
  );
});

// ---------------------------------------------------------------------------
// Bundles: the work-seed is read out of an untrusted rootfs.ext4.

function run(argv: string[]): string {
  const r = sh(argv);
  assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** mkfs.ext4 -d of a tree the test lays out (no metadata_csum, so a directory block can be edited with debugfs zap_block). */
function ext4Of(tree: string): string {
  const img = join(work, `img${seq++}.ext4`);
  run(['mkfs.ext4', '-q', '-F', '-O', '^metadata_csum', '-E', 'root_owner=0:0', '-d', tree, img, '32M']);
  return img;
}

/** Byte offset (within /dir's first block) of the name of entry `name`, found by walking the block's linear dirents. */
function nameOffset(img: string, dir: string, name: string): number {
  const blk = Number(
    run(['debugfs', '-R', `blocks ${dir}`, img])
      .trim()
      .split(/\s+/)[0],
  );
  const bs = Number(/Block size:\s+(\d+)/.exec(run(['dumpe2fs', '-h', img]))?.[1]);
  const block = readFileSync(img).subarray(blk * bs, blk * bs + bs);
  for (let off = 0; off < bs;) {
    const recLen = block.readUInt16LE(off + 4);
    const len = block[off + 6] as number;
    if (block.subarray(off + 8, off + 8 + len).toString() === name) return off + 8;
    if (recLen === 0) break;
    off += recLen;
  }
  throw new Error(`no entry ${name} in ${dir}`);
}

function seedBuilder(): { b: RootfsBuilder; dir: string } {
  return { b: builder(), dir: staging() };
}

test('a bundle whose /root holds the same name twice (a symlink to a host file, then a file) cannot write through the link', async () => {
  const victim = join(work, 'victim');
  writeFileSync(victim, 'original\n');
  const tree = mkdtempSync(join(work, 'tree-'));
  run(['mkdir', join(tree, 'root')]);
  writeFileSync(join(tree, 'root', 'y'), 'pwned\n');
  run(['ln', '-s', victim, join(tree, 'root', 'x')]);
  const img = ext4Of(tree);
  // Rename the directory entry "y" to "x" in place: /root now lists x (the symlink) and then x (the file).
  run(['debugfs', '-w', '-R', `zap_block -f /root -o ${nameOffset(img, '/root', 'y')} -l 1 -p 0x78 0`, img]);
  assert.match(run(['debugfs', '-R', 'ls /root', img]), /x.*x/s);

  const { b, dir } = seedBuilder();
  await assert.rejects(
    b.workSeedFromRootfs(dir, img, 'file:///evil.tar.zst', new AbortController().signal),
    (e: unknown) => {
      assert.ok(e instanceof AppError, String(e));
      assert.equal(e.code, 'bad_request');
      assert.match(
        e.message,
        /bundle file:\/\/\/evil\.tar\.zst: rootfs\.ext4 is not a clean ext4 filesystem .*Duplicate entry 'x'/,
      );
      return true;
    },
  );
  assert.equal(readFileSync(victim, 'utf8'), 'original\n');

  // Even past fsck, the reader refuses a directory that names one entry twice.
  const { listRootSubtree } = await import('../../src/services/image/bundle-seed.js');
  await assert.rejects(
    listRootSubtree(new NodeRunner(), img, 'bundle b', { maxBytes: 1 << 30 }, new AbortController().signal),
    /\/root holds two entries named "x"/,
  );
  assert.equal(readFileSync(victim, 'utf8'), 'original\n');
});

test('a bundle whose /root is a symlink is refused naming /root; nothing it points at is copied', async () => {
  const secretDir = mkdtempSync(join(work, 'host-ssh-'));
  writeFileSync(join(secretDir, 'id_ed25519'), 'HOST PRIVATE KEY\n');
  const tree = mkdtempSync(join(work, 'tree-'));
  run(['ln', '-s', secretDir, join(tree, 'root')]);
  const img = ext4Of(tree);
  const { b, dir } = seedBuilder();
  await assert.rejects(
    b.workSeedFromRootfs(dir, img, 'file:///evil.tar.zst', new AbortController().signal),
    (e: unknown) => {
      assert.ok(e instanceof AppError, String(e));
      assert.match(e.message, /\/root is a symlink, not a directory/);
      return true;
    },
  );
  assert.equal(sh(['test', '-e', join(dir, 'work-seed.ext4')]).code, 1, 'no work-seed was written');
});

test('a healthy bundle /root round-trips: files, modes, owners, hardlinks, fast and slow symlinks, nested dirs', async () => {
  const tree = mkdtempSync(join(work, 'tree-'));
  const root = join(tree, 'root');
  run(['mkdir', '-p', join(root, '.ssh'), join(root, 'a/b/c')]);
  writeFileSync(join(root, '.bashrc'), 'export X=1\n');
  writeFileSync(join(root, '.ssh', 'config'), 'Host *\n');
  writeFileSync(join(root, 'a/b/c/deep'), 'deep\n');
  run(['chmod', '700', join(root, '.ssh')]);
  run(['chmod', '600', join(root, '.ssh', 'config')]);
  run(['chown', '1000:1001', join(root, 'a/b/c/deep')]);
  run(['ln', join(root, '.bashrc'), join(root, 'a', 'hard')]);
  run(['ln', '-s', '.bashrc', join(root, 'fast')]);
  run(['ln', '-s', `a/${'x'.repeat(120)}`, join(root, 'slow')]);
  const img = ext4Of(tree);
  const { b, dir } = seedBuilder();
  assert.equal(await b.workSeedFromRootfs(dir, img, 'file:///ok.tar.zst', new AbortController().signal), true);
  const seed = join(dir, 'work-seed.ext4');
  assert.equal(sh(['e2fsck', '-fn', seed]).code, 0);
  const cat = (p: string): string => run(['debugfs', '-R', `cat ${p}`, seed]);
  assert.equal(cat('/.bashrc'), 'export X=1\n');
  assert.equal(cat('/a/b/c/deep'), 'deep\n');
  const stat = (p: string): string => run(['debugfs', '-R', `stat ${p}`, seed]);
  assert.match(stat('/.ssh'), /Mode:\s+0700/);
  assert.match(stat('/.ssh/config'), /Mode:\s+0600/);
  assert.match(stat('/a/b/c/deep'), /User:\s+1000\s+Group:\s+1001/);
  assert.match(stat('/.bashrc'), /Links: 2/);
  assert.match(stat('/fast'), /Fast link dest: "\.bashrc"/);
  assert.match(run(['debugfs', '-R', 'ls -l /', seed]), /slow/);
  assert.equal(cat('/slow'), `a/${'x'.repeat(120)}`);
});
