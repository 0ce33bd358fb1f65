import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { AppError } from '../../errors.js';
import { AGENT_PATH, ASSETS_VERSION } from '../../guest/assets.js';
import { openStore } from '../../store/db.js';
import { ImageRepo, type ImageRow } from '../../store/images.js';
import { imageFiles, Paths } from '../../system/paths.js';
import { nullLogger, quietContext } from '../context.js';
import { ImageLeases } from './lease.js';
import { autoRefresh, refreshImage, type RefreshDeps } from './refresh.js';

/*
 * refreshImage with the ext4 tools faked (the integration tier runs them for
 * real): what is refused, and that a failure at any step leaves the image as
 * it was and no copy behind.
 */

const OLD = ASSETS_VERSION - 1;

function setup(t: TestContext, runner: FakeRunner, usedBy: () => string[] = () => [], managed = true) {
  const root = mkdtempSync(join(tmpdir(), 'refresh-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  const dir = paths.imageDir('i1');
  mkdirSync(dir, { recursive: true });
  const rootfs = join(dir, imageFiles.rootfs);
  writeFileSync(rootfs, 'old rootfs');
  const manifest = join(dir, imageFiles.manifest);
  writeFileSync(manifest, JSON.stringify({ name: 'img', assets_version: OLD }));
  const repo = new ImageRepo(openStore(':memory:'));
  const row: ImageRow = {
    id: 'i1',
    name: 'img',
    source: 'test',
    managed,
    dir,
    rootfsPath: rootfs,
    workSeedPath: undefined,
    kernelName: 'k1',
    distro: 'debian',
    sizeBytes: 10,
    assetsVersion: OLD,
    createdAt: 'then',
  };
  repo.insert(row);
  const deps: RefreshDeps = { paths, repo, runner, log: nullLogger, usedBy, leases: new ImageLeases() };
  const unchanged = (): void => {
    assert.equal(readFileSync(rootfs, 'utf8'), 'old rootfs');
    assert.equal(JSON.parse(readFileSync(manifest, 'utf8')).assets_version, OLD);
    assert.equal(repo.get('i1')?.assetsVersion, OLD);
    assert.deepEqual(existsSync(paths.tmpDir) ? readdirSync(paths.tmpDir) : [], [], 'no copy left behind');
    assert.deepEqual(readdirSync(dir).sort(), [imageFiles.manifest, imageFiles.rootfs].sort());
  };
  return { deps, row, rootfs, manifest, repo, unchanged };
}

/** cp copies for real (the swap is checked); e2fsck is clean; debugfs succeeds unless told. */
function tools(o: { fsck?: number; inject?: string } = {}): FakeRunner {
  return new FakeRunner()
    .on('cp', (argv) => {
      copyFileSync(argv[argv.length - 2] as string, argv[argv.length - 1] as string);
      return {};
    })
    .on('e2fsck', { code: o.fsck ?? 0, stdout: o.fsck ? 'Journal superblock has an unknown incompatible feature' : '' })
    .on((a) => a[0] === 'debugfs' && !a.includes('-w'), { stdout: '' })
    .on(
      (a) => a[0] === 'debugfs' && a.includes('-w'),
      (_argv, opts) => {
        assert.match(String(opts.input), new RegExp(AGENT_PATH.replaceAll('/', '\\/')));
        return { stdout: o.inject ?? '' };
      },
    );
}

test('a VM using the image: refused naming it, nothing run, nothing changed', async (t) => {
  const runner = new FakeRunner();
  const s = setup(t, runner, () => ['dev1', 'dev2']);
  await assert.rejects(
    refreshImage(s.deps, s.row, quietContext()),
    (e: unknown) =>
      e instanceof AppError &&
      e.code === 'precondition' &&
      e.message.includes('used by VMs dev1, dev2') &&
      (e.hint ?? '').includes('banger vm delete dev1 dev2'),
  );
  assert.deepEqual(runner.calls, []);
  runner.assertNoUnexpected();
  s.unchanged();
});

test('a VM created while the copy was being made: refused before the swap, nothing changed', async (t) => {
  let n = 0;
  const s = setup(t, tools(), () => (n++ === 0 ? [] : ['late']));
  await assert.rejects(refreshImage(s.deps, s.row, quietContext()), /used by VM late/);
  s.unchanged();
});

test('a registered image is refused with the promote hint', async (t) => {
  const s = setup(t, new FakeRunner(), () => [], false);
  await assert.rejects(
    refreshImage(s.deps, s.row, quietContext()),
    (e: unknown) => e instanceof AppError && e.code === 'precondition' && /image promote img/.test(e.hint ?? ''),
  );
  s.unchanged();
});

test('an unclean rootfs (dirty journal) is refused before debugfs -w touches it', async (t) => {
  const runner = tools({ fsck: 4 });
  const s = setup(t, runner);
  await assert.rejects(
    refreshImage(s.deps, s.row, quietContext()),
    /not a clean ext4 filesystem \(e2fsck -fn exited 4\)/,
  );
  assert.equal(runner.callsTo('debugfs').length, 0);
  s.unchanged();
});

test('a failed injection leaves the image as it was', async (t) => {
  const s = setup(t, tools({ inject: 'write: Could not allocate inode in ext2 filesystem' }));
  await assert.rejects(
    refreshImage(s.deps, s.row, quietContext()),
    (e: unknown) => e instanceof AppError && e.code === 'operation_failed',
  );
  s.unchanged();
});

test('success: the copy replaces the rootfs, manifest and row record the current version', async (t) => {
  const s = setup(t, tools());
  const out = await refreshImage(s.deps, s.row, quietContext());
  assert.equal(out.assetsVersion, ASSETS_VERSION);
  assert.equal(s.repo.get('i1')?.assetsVersion, ASSETS_VERSION);
  const m = JSON.parse(readFileSync(s.manifest, 'utf8'));
  assert.deepEqual(m, { name: 'img', assets_version: ASSETS_VERSION });
});

test('autoRefresh: a failed refresh of the default image is logged and the image used as it is; cancel propagates', async (t) => {
  const warned: string[] = [];
  const s = setup(t, new FakeRunner());
  const deps = { ...s.deps, log: { ...nullLogger, warn: (m: string) => void warned.push(m) } };
  const failing = (): Promise<ImageRow> => Promise.reject(new AppError('operation_failed', 'disk full'));
  const row = await autoRefresh(deps, s.row, quietContext(), failing);
  assert.equal(row.assetsVersion, OLD);
  assert.match(warned.join('\n'), /could not refresh the guest assets of the default image/);
  await assert.rejects(
    autoRefresh(deps, s.row, quietContext(), () => Promise.reject(new AppError('cancelled', 'operation cancelled'))),
    /cancelled/,
  );
  let called = 0;
  const current = { ...s.row, assetsVersion: ASSETS_VERSION };
  await autoRefresh(deps, current, quietContext(), () => Promise.resolve(current).finally(() => called++));
  await autoRefresh(deps, { ...s.row, managed: false }, quietContext(), () =>
    Promise.resolve(s.row).finally(() => called++),
  );
  assert.equal(called, 0, 'current and registered images are not refreshed');
});
