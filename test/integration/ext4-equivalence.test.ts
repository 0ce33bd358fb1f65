/**
 * Integration (root: loop mounts; no network once the Debian tree is
 * cached): the Debian test image written the old way (Flattener into a host
 * tree, then mkfs.ext4 -d) and the new way (our tar reader → LayerMerger →
 * Ext4Writer, no host file but the image), both mounted read-only and
 * compared entry by entry: file list, type, mode, uid/gid, link counts,
 * symlink targets, device numbers, mtimes (but of symlinks), content hashes.
 * Device nodes and fifos are left out by both (as the Flattener does). xattrs: the old way
 * writes none; the new image must hold exactly the tar's (checked by debugfs).
 * The last cases run both whole pipelines (guest assets, mount points and the
 * work-seed included) and compare rootfs and seed the same way, on the Debian
 * test image and on the default image (the embedded recipe's mmdebstrap tar,
 * cached under .test-cache/ like the other test images, fed without a size
 * hint as a local build's stream is).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { pack, type Header } from 'tar-stream';
import { readTar, type TarEntry } from '../../src/archive/tar-reader.js';
import { findImageEntry } from '../../src/catalog/embedded.js';
import { defaultRootfsBytes, mkfsFromTreeArgv, workSeedSpec } from '../../src/ext4/mkfs.js';
import { Ext4Writer } from '../../src/ext4/writer/writer.js';
import { guestAssets, isBuildTimeSecret, MOUNT_POINTS } from '../../src/guest/assets.js';
import { Flattener } from '../../src/imagepull/flatten.js';
import { LayerMerger } from '../../src/imagepull/layer-merge.js';
import { nullLogger, quietContext } from '../../src/services/context.js';
import { treeBytes } from '../../src/services/fsutil.js';
import { injectGuestAssets } from '../../src/services/image/guest-assets.js';
import { RootfsBuilder } from '../../src/services/image/pipeline.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { debianBaseTar } from '../helpers/oci-push.js';
import { missingRoot, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [
    ...missingTools(['mmdebstrap', 'mkfs.ext4', 'debugfs', 'mount', 'umount', 'python3']),
    ...missingRoot('loop mounts'),
  ],
  'apt install mmdebstrap e2fsprogs mount python3; run as root',
);
const PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo'];
const SIZE = 2 * 2 ** 30;
const runner = new NodeRunner();

/** One line per path of a mounted tree. */
function walk(root: string, dirMtimes: boolean): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (r === 'lost+found') continue;
      const p = join(root, r);
      const st = lstatSync(p);
      let what = '';
      if (st.isFile()) what = createHash('sha256').update(readFileSync(p)).digest('hex');
      else if (st.isSymbolicLink()) what = readlinkSync(p);
      else if (st.isCharacterDevice() || st.isBlockDevice()) what = `dev ${st.rdev}`;
      const kind = (st.mode & 0o170000).toString(8);
      // A directory's size is layout (the writer indexes big directories, mkfs -d writes them linear).
      const size = st.isDirectory() ? '' : st.size;
      // Symlinks of the host tree carry the time they were made, not the tar's.
      // A directory a later layer writes into gets the extraction time in the old tree (unless that layer declares it).
      const mtime = st.isSymbolicLink() || (st.isDirectory() && !dirMtimes) ? '' : Math.floor(st.mtimeMs / 1000);
      const mode = (st.mode & 0o7777).toString(8);
      out.push(`${r} ${kind} ${mode} ${st.uid}:${st.gid} ${st.nlink} ${size} ${mtime} ${what}`);
      if (st.isDirectory()) visit(r);
    }
  };
  visit('');
  return out;
}

async function withMount<T>(img: string, dir: string, fn: () => T | Promise<T>): Promise<T> {
  mkdirSync(dir);
  await runner.check(['mount', '-o', 'loop,ro', img, dir]);
  try {
    return await fn();
  } finally {
    await runner.check(['umount', dir]);
  }
}

/** An upper layer over the Debian tree: whiteouts of a big directory and of a symlink, an opaque directory, replacements, a symlink turned directory, implicit parents. */
async function upperLayer(): Promise<Buffer> {
  const p = pack();
  const mtime = new Date(1700000000000);
  const add = (h: Pick<Header, 'name'> & Partial<Header>, body = ''): void => {
    p.entry({ mtime, ...h }, body);
  };
  add({ name: 'usr/share/.wh.doc' });
  add({ name: 'etc/.wh.os-release' });
  add({ name: 'etc/ssh/.wh..wh..opq' });
  add({ name: 'etc/ssh/sshd_config', mode: 0o600 }, 'PermitRootLogin no\n');
  add({ name: 'usr/bin/sudo', mode: 0o4711 }, '#!/bin/false\n');
  add({ name: 'lib64/', type: 'directory', mode: 0o755 });
  add({ name: 'lib64/x', mode: 0o644 }, 'x');
  add({ name: 'opt/app/bin/run', mode: 0o755, uid: 1000, gid: 1000 }, 'run');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Both pipelines over `layers` (bottom-up), their images compared; the writer's must also hold the tars' xattrs. */
async function compare(dir: string, layers: Array<{ label: string; open: () => Readable }>): Promise<void> {
  const tree = join(dir, 'tree');
  mkdirSync(tree, { mode: 0o700 });
  const flat = new Flattener(tree, { applyOwnership: true, skip: isBuildTimeSecret });
  for (const l of layers) await flat.applyLayer(l.open(), l.label);
  const oldImg = join(dir, 'old.img');
  await runner.check(mkfsFromTreeArgv({ image: oldImg, tree, sizeBytes: SIZE, label: 'rootfs' }));
  rmSync(tree, { recursive: true, force: true });

  const newImg = join(dir, 'new.img');
  const w = await Ext4Writer.create(newImg, { sizeBytes: SIZE, inodes: 131072, label: 'rootfs' });
  const merger = new LayerMerger(w, { skip: isBuildTimeSecret });
  const xattrs = new Map<string, string[]>();
  const tapped = async function* (l: { label: string; open: () => Readable }): AsyncGenerator<TarEntry> {
    for await (const e of readTar(l.open(), l.label)) {
      if (e.header.xattrs.length > 0) xattrs.set(e.header.name, e.header.xattrs.map(([k]) => k).sort());
      yield e;
    }
  };
  for (const l of [...layers].reverse()) await merger.applyLayer(tapped(l), l.label);
  await w.finish();

  const fsck = await runner.run(['e2fsck', '-fn', newImg]);
  assert.equal(fsck.code, 0, fsck.stdout);
  const oldRows = await withMount(oldImg, join(dir, 'm-old'), () => walk(join(dir, 'm-old'), layers.length === 1));
  const newRows = await withMount(newImg, join(dir, 'm-new'), () => walk(join(dir, 'm-new'), layers.length === 1));
  assert.ok(oldRows.length > 5000, `${oldRows.length} entries`);
  const oldSet = new Set(oldRows);
  const newSet = new Set(newRows);
  const onlyOld = oldRows.filter((r) => !newSet.has(r));
  const onlyNew = newRows.filter((r) => !oldSet.has(r));
  assert.deepEqual({ onlyOld: onlyOld.slice(0, 20), onlyNew: onlyNew.slice(0, 20) }, { onlyOld: [], onlyNew: [] });
  assert.equal(newRows.length, oldRows.length);

  // The old image has no xattrs; the new one has exactly the tar's (the ACLs of /var/log/journal).
  assert.ok(xattrs.size > 0);
  for (const [name, keys] of xattrs) {
    const list = (await runner.check(['debugfs', '-R', `ea_list "/${name.replace(/^\.\//, '')}"`, newImg])).stdout;
    const got = [...list.matchAll(/^\s+(\S+) \(\d+\) = /gm)].map((m) => m[1]).sort();
    assert.deepEqual(got, keys, name);
  }
}

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ext4-equiv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('Debian image: old pipeline (Flattener + mkfs.ext4 -d) and the writer make the same tree', { skip }, async (t) => {
  const tar = debianBaseTar(PACKAGES);
  await compare(tmp(t), [{ label: 'debian', open: () => createReadStream(tar) }]);
});

test(
  'Debian image + an upper layer with whiteouts, an opaque dir and replacements: the same tree',
  { skip },
  async (t) => {
    const tar = debianBaseTar(PACKAGES);
    const upper = await upperLayer();
    await compare(tmp(t), [
      { label: 'layer 1/2', open: () => createReadStream(tar) },
      { label: 'layer 2/2', open: () => Readable.from([upper]) },
    ]);
  },
);

/** The pre-issue-15 RootfsBuilder.build: Flattener → mkfs.ext4 -d → guest assets and mount points by debugfs; the seed from the tree's /root. */
async function oldPipeline(dir: string, tar: string): Promise<{ rootfs: string; seed: string }> {
  const tree = join(dir, 'tree');
  mkdirSync(tree, { mode: 0o700 });
  const flat = new Flattener(tree, { applyOwnership: true, skip: isBuildTimeSecret });
  await flat.applyLayer(createReadStream(tar), 'debian');
  const { meta, bytes } = flat.result();
  const rootfs = join(dir, 'old-rootfs.ext4');
  await runner.check(mkfsFromTreeArgv({ image: rootfs, tree, sizeBytes: defaultRootfsBytes(bytes), label: 'rootfs' }));
  const dirs = MOUNT_POINTS.filter((d) => !meta.has(d.path.slice(1)));
  await injectGuestAssets(runner, dir, rootfs, { dirs }, new AbortController().signal);
  const seed = join(dir, 'old-seed.ext4');
  const rootDir = join(tree, 'root');
  const { bytes: b, files } = await treeBytes(rootDir);
  const spec = workSeedSpec(b + files * 4096);
  await runner.check(
    mkfsFromTreeArgv({ image: seed, tree: rootDir, sizeBytes: spec.sizeBytes, label: 'work', inodes: spec.inodes }),
  );
  rmSync(tree, { recursive: true, force: true });
  return { rootfs, seed };
}

/** Every xattr of a mounted tree (lost+found left out), as `path name hex` lines, read by the kernel (python's os.listxattr: node has no xattr call). */
async function mountedXattrs(root: string): Promise<string[]> {
  const py = [
    'import os, sys',
    'root = sys.argv[1]',
    'def visit(rel):',
    '    for name in sorted(os.listdir(os.path.join(root, rel))):',
    '        r = name if rel == "" else rel + "/" + name',
    '        if r == "lost+found": continue',
    '        p = os.path.join(root, r)',
    '        for k in sorted(os.listxattr(p, follow_symlinks=False)):',
    '            print(r, k, os.getxattr(p, k, follow_symlinks=False).hex())',
    '        if os.path.isdir(p) and not os.path.islink(p): visit(r)',
    'visit("")',
  ].join('\n');
  const out = (await runner.check(['python3', '-c', py, root])).stdout;
  return out.split('\n').filter((l) => l !== '');
}

/** The xattrs a tar declares, as `path name hex` lines (paths under `under`, relative to it). */
async function tarXattrs(tar: string, under = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readTar(createReadStream(tar), 'xattrs')) {
    const name = e.header.name.replace(/^\.\//, '').replace(/\/$/, '');
    if (e.header.xattrs.length > 0 && (under === '' || name.startsWith(`${under}/`))) {
      const rel = under === '' ? name : name.slice(under.length + 1);
      for (const [k, v] of e.header.xattrs) out.push(`${rel} ${k} ${Buffer.from(v).toString('hex')}`);
    }
  }
  return out.sort();
}

/** Both whole pipelines on `tar` (one layer; no size hint, as a local build's mmdebstrap stream, when `hint` is false): rootfs and work-seed compared. */
async function wholePipeline(t: TestContext, tar: string, label: string, hint: boolean): Promise<void> {
  const dir = tmp(t);
  const old = await oldPipeline(dir, tar);
  const staging = join(dir, 'staging');
  mkdirSync(staging);
  const b = new RootfsBuilder(runner, nullLogger, true, 2 ** 34);
  const layer = {
    label,
    open: async () => ({ stream: createReadStream(tar) }),
    ...(hint ? { sizeHint: async () => statSync(tar).size } : {}),
  };
  const res = await b.build(staging, [layer], {}, quietContext(), new AbortController().signal);
  assert.equal(res.distro, 'debian');
  assert.equal(res.hasSshd && res.hasSystemd && res.workSeed, true);
  const newRootfs = join(staging, 'rootfs.ext4');
  const newSeed = join(staging, 'work-seed.ext4');
  for (const img of [newRootfs, newSeed]) {
    const fsck = await runner.run(['e2fsck', '-fn', img]);
    assert.equal(fsck.code, 0, fsck.stdout);
  }
  const counts: Record<string, number> = {};
  const xattrCounts: Record<string, number> = {};
  for (const [o, n, what] of [
    [old.rootfs, newRootfs, 'rootfs'],
    [old.seed, newSeed, 'seed'],
  ] as const) {
    // Left out: the mtimes of the guest assets, of the directories above them and of the mount points
    // (a pipeline may have made them): they carry the clock of the build. Every other mtime is compared.
    const assets = new Set(guestAssets().files.map((f) => f.path.slice(1)));
    const built = new Set(MOUNT_POINTS.map((d) => d.path.slice(1)));
    for (const a of assets) for (let d = dirname(a); d !== '.'; d = dirname(d)) built.add(d);
    const unclocked = (rows: string[]): string[] =>
      rows.map((r) => {
        const f = r.split(' ');
        if (assets.has(f[0] as string) || (f[1] === '40000' && built.has(f[0] as string))) f[6] = '';
        return f.join(' ');
      });
    const mo = join(dir, `mo-${what}`);
    const mn = join(dir, `mn-${what}`);
    const [oldRows, oldX] = await withMount(o, mo, async () => [unclocked(walk(mo, true)), await mountedXattrs(mo)]);
    const [newRows, newX] = await withMount(n, mn, async () => [unclocked(walk(mn, true)), await mountedXattrs(mn)]);
    // xattrs: the old pipeline wrote none (the Flattener drops them); the writer's image holds exactly the tar's, byte for byte.
    assert.deepEqual(oldX, [], what);
    assert.deepEqual(newX.sort(), await tarXattrs(tar, what === 'seed' ? 'root' : ''), what);
    xattrCounts[what] = newX.length;
    const oldSet = new Set(oldRows);
    const newSet = new Set(newRows);
    const diff = {
      onlyOld: oldRows.filter((r) => !newSet.has(r)).slice(0, 20),
      onlyNew: newRows.filter((r) => !oldSet.has(r)).slice(0, 20),
    };
    assert.deepEqual(diff, { onlyOld: [], onlyNew: [] }, what);
    assert.equal(newRows.length, oldRows.length, what);
    counts[what] = newRows.length;
  }
  assert.ok((counts.rootfs ?? 0) > 5000, `${counts.rootfs} rootfs entries`);
  t.diagnostic(
    `${label}: ${counts.rootfs} rootfs entries and ${counts.seed} work-seed entries equal; ${xattrCounts.rootfs} + ${xattrCounts.seed} xattrs as in the tar`,
  );
}

test(
  'the whole pipeline on the Debian image: RootfsBuilder (writer) vs Flattener + mkfs.ext4 -d + debugfs, rootfs and work-seed',
  { skip },
  async (t) => {
    await wholePipeline(t, debianBaseTar(PACKAGES), 'debian', true);
  },
);

test(
  'the whole pipeline on the default image (the embedded recipe by mmdebstrap, spooled as a local build is): the same rootfs and work-seed',
  { skip },
  async (t) => {
    // The recipe's own mmdebstrap argv (mmdebstrapLayer, no mirror), built once into .test-cache/.
    const recipe = findImageEntry('debian-bookworm');
    assert.equal(recipe?.suite, 'bookworm');
    await wholePipeline(t, debianBaseTar([...recipe.packages]), 'mmdebstrap', false);
  },
);
