/**
 * Integration (no network, no VM): `image refresh` and the default image's
 * automatic refresh with the real mkfs.ext4, debugfs, e2fsck and cp. An image
 * made with older guest assets (no agent, no /proc) gains the agent, its unit
 * and the missing mount points; an image a VM uses is refused and left byte
 * for byte as it was.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Catalog } from '../../src/catalog/catalog.js';
import { AppError } from '../../src/errors.js';
import { mkfsFromTreeArgv } from '../../src/ext4/mkfs.js';
import { AGENT_PATH, AGENT_UNIT, AGENT_UNIT_TEXT, ASSETS_VERSION } from '../../src/guest/assets.js';
import { nullLogger, quietContext } from '../../src/services/context.js';
import { ImageService } from '../../src/services/image/service.js';
import { openStore } from '../../src/store/db.js';
import { ImageRepo, type ImageRow } from '../../src/store/images.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { guestBinary, imageFiles, Paths } from '../../src/system/paths.js';
import { fakeBzImage } from '../helpers/fake-kernel.js';
import { sh, TestHome } from '../helpers/home.js';
import { missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [
    ...missingTools(['mkfs.ext4', 'debugfs', 'e2fsck', 'cp']),
    ...(existsSync(guestBinary('banger-agent')) ? [] : ['npm run build']),
  ],
  'apt install e2fsprogs; npm run build',
);
const work = mkdtempSync(join(tmpdir(), 'banger-it-refresh-'));
after(() => rmSync(work, { recursive: true, force: true }));

const OLD = ASSETS_VERSION - 1;

/** A home with one managed image made by an older banger: a busybox-like tree without the agent or /proc. */
function setup(name: string, users: string[] = []) {
  const root = mkdtempSync(join(work, 'home-'));
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  const id = randomBytes(8).toString('hex');
  const dir = paths.imageDir(id);
  mkdirSync(dir, { recursive: true });
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  mkdirSync(join(tree, 'var/run'), { recursive: true });
  writeFileSync(join(tree, 'bin/busybox'), '#!/bin/true\n', { mode: 0o755 });
  sh(['ln', '-s', 'var/run', join(tree, 'run')]);
  const rootfs = join(dir, imageFiles.rootfs);
  const mk = sh(mkfsFromTreeArgv({ image: rootfs, tree, sizeBytes: 64 << 20, label: 'rootfs' }));
  assert.equal(mk.code, 0, mk.stderr);
  writeFileSync(join(dir, imageFiles.manifest), `${JSON.stringify({ name, assets_version: OLD, source: 'test' })}\n`);
  const repo = new ImageRepo(openStore(':memory:'));
  const row: ImageRow = {
    id,
    name,
    source: 'test',
    managed: true,
    dir,
    rootfsPath: rootfs,
    workSeedPath: undefined,
    kernelName: 'k1',
    distro: 'busybox',
    sizeBytes: 64 << 20,
    assetsVersion: OLD,
    createdAt: 'then',
  };
  repo.insert(row);
  const vms = [...users];
  const svc = new ImageService(
    paths,
    repo,
    {
      ensure: () => Promise.reject(new Error('not used')),
      files: () => Promise.reject(new Error('not used')),
      bootReady: (f) => Promise.resolve(f),
      import: () => Promise.reject(new Error('not used')),
      delete: () => Promise.reject(new Error('not used')),
    },
    new NodeRunner(),
    nullLogger,
    new AbortController().signal,
    {
      mirror: undefined,
      isRoot: process.getuid?.() === 0,
      defaultImage: 'debian-bookworm',
      usedBy: () => vms,
      defaultKernel: 'k1',
      insecureHosts: [],
      maxUnpackedBytes: 2 ** 30,
      catalog: new Catalog({ source: undefined, policy: { insecureHosts: [] }, signal: new AbortController().signal }),
    },
  );
  return { svc, repo, row, rootfs, paths, vms, manifest: join(dir, imageFiles.manifest) };
}

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const stat = (rootfs: string, path: string): string => sh(['debugfs', '-R', `stat "${path}"`, rootfs]).stdout;
const leftovers = (paths: Paths): string[] => (existsSync(paths.tmpDir) ? readdirSync(paths.tmpDir) : []);

test('refresh of an image a VM uses is refused, naming the VM, and changes nothing', { skip }, async () => {
  const s = setup('old', ['dev1']);
  const before = sha(s.rootfs);
  const manifest = readFileSync(s.manifest, 'utf8');
  await assert.rejects(
    s.svc.refresh('old', quietContext()),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      /used by VM dev1/.test(e.message) &&
      /vm delete dev1/.test(e.hint ?? ''),
  );
  assert.equal(sha(s.rootfs), before, 'rootfs byte for byte as it was');
  assert.equal(readFileSync(s.manifest, 'utf8'), manifest);
  assert.equal(s.repo.get(s.row.id)?.assetsVersion, OLD);
  assert.deepEqual(leftovers(s.paths), []);
});

test(
  'refresh of an image with older assets brings the agent, its unit and the missing mount points in',
  { skip },
  async () => {
    const s = setup('old');
    assert.match(sh(['debugfs', '-R', `stat "${AGENT_PATH}"`, s.rootfs]).stderr, /File not found/, 'no agent yet');
    const refreshed = await s.svc.refresh('old', quietContext());
    assert.equal(refreshed.assetsVersion, ASSETS_VERSION);
    assert.equal(s.repo.get(s.row.id)?.assetsVersion, ASSETS_VERSION);
    assert.equal(JSON.parse(readFileSync(s.manifest, 'utf8')).assets_version, ASSETS_VERSION);
    assert.equal(JSON.parse(readFileSync(s.manifest, 'utf8')).source, 'test', 'other manifest keys kept');

    assert.match(stat(s.rootfs, AGENT_PATH), /Type: regular[\s\S]*Mode:\s+0755\s/);
    const dumped = join(work, `agent-${s.row.id}`);
    assert.equal(sh(['debugfs', '-R', `dump "${AGENT_PATH}" "${dumped}"`, s.rootfs]).code, 0);
    assert.deepEqual(readFileSync(dumped), readFileSync(guestBinary('banger-agent')));
    assert.equal(sh(['debugfs', '-R', `cat "/etc/systemd/system/${AGENT_UNIT}"`, s.rootfs]).stdout, AGENT_UNIT_TEXT);
    assert.match(stat(s.rootfs, '/proc'), /Type: directory/);
    assert.match(stat(s.rootfs, '/run'), /Type: symlink/, "the image's own /run link stays");
    const fsck = sh(['e2fsck', '-fn', s.rootfs]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    assert.deepEqual(leftovers(s.paths), []);

    // Again: the files are replaced, not duplicated, and the filesystem stays clean.
    await s.svc.refresh('old', quietContext());
    const again = sh(['e2fsck', '-fn', s.rootfs]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  },
);

test(
  'the default image is refreshed on first use when its assets are older, and kept while a VM uses it',
  { skip },
  async () => {
    const s = setup('debian-bookworm', ['dev1']);
    const before = sha(s.rootfs);
    const kept = await s.svc.ensure('debian-bookworm', quietContext());
    assert.equal(kept.assetsVersion, OLD, 'a VM uses it: kept as it is');
    assert.equal(sha(s.rootfs), before);

    s.vms.length = 0;
    const row = await s.svc.ensure('debian-bookworm', quietContext());
    assert.equal(row.assetsVersion, ASSETS_VERSION);
    assert.equal(s.repo.get(s.row.id)?.assetsVersion, ASSETS_VERSION);
    assert.match(stat(s.rootfs, AGENT_PATH), /Type: regular/);
  },
);

test('an image that is not the default keeps its assets on ensure', { skip }, async () => {
  const s = setup('other');
  const before = sha(s.rootfs);
  assert.equal((await s.svc.ensure('other', quietContext())).assetsVersion, OLD);
  assert.equal(sha(s.rootfs), before);
});

test(
  'banger image refresh through the daemon: registered refused, promoted refreshed, refused once a VM uses it',
  { skip },
  async () => {
    const home = new TestHome('banger-refresh-');
    try {
      const w = join(home.root, 'work');
      mkdirSync(join(w, 'tree', 'etc'), { recursive: true });
      writeFileSync(join(w, 'tree', 'etc', 'os-release'), 'ID=debian\n');
      writeFileSync(join(w, 'vmlinuz'), fakeBzImage('9.9.9-refresh'));
      const rootfs = join(w, 'rootfs.ext4');
      assert.equal(sh(['mkfs.ext4', '-q', '-F', '-d', join(w, 'tree'), rootfs, '64M']).code, 0);
      const ok = async (args: string[]): Promise<string> => {
        const r = await home.banger(args);
        assert.equal(r.code, 0, `banger ${args.join(' ')}: ${r.stderr}${r.stdout}`);
        return r.stdout;
      };
      await ok(['kernel', 'import', 'rk', '--kernel', join(w, 'vmlinuz')]);
      await ok(['image', 'register', 'reg', '--rootfs', rootfs, '--kernel-ref', 'rk']);
      const registered = await home.banger(['image', 'refresh', 'reg']);
      assert.notEqual(registered.code, 0);
      assert.match(registered.stderr, /image "reg" is registered/);
      assert.match(registered.stderr, /banger image promote reg/);

      const userFile = sha(rootfs);
      await ok(['image', 'promote', 'reg']);
      const r = JSON.parse(await ok(['image', 'refresh', 'reg', '--json'])) as Record<string, unknown>;
      assert.deepEqual(r.assets_version, ASSETS_VERSION);
      assert.deepEqual(r.previous_assets_version, 0);
      const shown = JSON.parse(await ok(['image', 'show', 'reg', '--json'])) as {
        assets_version: number;
        rootfs: string;
      };
      assert.equal(shown.assets_version, ASSETS_VERSION);
      assert.match(stat(shown.rootfs, AGENT_PATH), /Type: regular/);
      assert.equal(sha(rootfs), userFile, 'the registered file itself is never written');

      await ok(['vm', 'create', '--name', 'user1', '--image', 'reg', '--disk-size', '128M', '--no-start']);
      const before = sha(shown.rootfs);
      const used = await home.banger(['image', 'refresh', 'reg']);
      assert.notEqual(used.code, 0);
      assert.match(used.stderr, /used by VM user1/);
      assert.equal(sha(shown.rootfs), before);
    } finally {
      await home.cleanup();
    }
  },
);
