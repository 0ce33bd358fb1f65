import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { BuildImageEntry } from '../../catalog/embedded.js';
import { EMBEDDED_IMAGES } from '../../catalog/embedded.js';
import type { CatalogImageEntry } from '../../catalog/images.js';
import { AppError } from '../../errors.js';
import { writeBundle } from '../../imagepull/bundle.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import type { KernelRow } from '../../store/kernels.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { imageRow } from '../../../test/helpers/rows.js';
import { Paths } from '../../system/paths.js';
import { nullLogger, quietContext, type OpContext } from '../context.js';
import type { KernelFiles } from '../kernel/manifest.js';
import { ImageService, type ImageCatalog, type ImageKernels } from './service.js';

/*
 * ImageService against the fake runner and narrow fakes of the kernel
 * service and the catalog: what each path refuses, and that a failure
 * leaves no row and no directory behind.
 */

function kernelRow(dir: string, name: string): KernelRow {
  return {
    name,
    distro: 'debian',
    arch: 'x86_64',
    version: '6.1.0-test',
    format: 'bzImage',
    source: 'test',
    sha256: '0'.repeat(64),
    dir,
    hasInitrd: false,
    hasModules: false,
    moduleCount: 0,
    traits: {},
    createdAt: 'now',
  };
}

/** The kernels ImageService sees: k1 exists; ensure() records what was asked. */
class FakeKernels implements ImageKernels {
  readonly ensured: string[] = [];
  constructor(private readonly root: string) {}
  async ensure(name: string, _ctx: OpContext): Promise<KernelRow> {
    this.ensured.push(name);
    if (name !== 'k1' && name !== 'debian-bookworm-cloud') throw new AppError('not_found', `no kernel ${name}`);
    const dir = join(this.root, 'kernels', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bzImage'), name);
    return kernelRow(dir, name);
  }
  bootReady(files: KernelFiles): Promise<KernelFiles> {
    return Promise.resolve(files);
  }

  async files(name: string): Promise<KernelFiles> {
    throw new AppError('not_found', `files of ${name} not faked`);
  }
  async import(): Promise<KernelRow> {
    throw new AppError('bad_request', 'import not faked');
  }
  async delete(name: string): Promise<{ name: string }> {
    return { name };
  }
}

class FakeCatalog implements ImageCatalog {
  bundles: CatalogImageEntry[] = [];
  async image(name: string): Promise<CatalogImageEntry | undefined> {
    return this.bundles.find((b) => b.name === name);
  }
  recipe(name: string): BuildImageEntry | undefined {
    return EMBEDDED_IMAGES.find((i) => i.name === name);
  }
  baseRecipe(name: string): BuildImageEntry | undefined {
    return this.recipe(name) ?? EMBEDDED_IMAGES[0];
  }
}

function setup(t: TestContext, usedBy: (id: string) => string[] = () => []) {
  const root = mkdtempSync(join(tmpdir(), 'imgunit-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  const runner = new FakeRunner();
  t.after(() => runner.assertNoUnexpected());
  const repo = new ImageRepo(openStore(':memory:'));
  const kernels = new FakeKernels(root);
  const catalog = new FakeCatalog();
  const svc = new ImageService(paths, repo, kernels, runner, nullLogger, new AbortController().signal, {
    mirror: undefined,
    isRoot: false,
    defaultImage: 'debian-bookworm',
    usedBy,
    defaultKernel: 'k1',
    insecureHosts: [],
    maxUnpackedBytes: 2 ** 30,
    catalog,
  });
  /** Nothing half-made: no staging dir in tmp/, no image dir. */
  const leftovers = (): string[] =>
    [paths.tmpDir, paths.imagesDir].flatMap((d) => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : []));
  return { root, paths, runner, repo, kernels, catalog, svc, leftovers };
}

const isApp =
  (code: string, re: RegExp) =>
  (e: unknown): boolean =>
    e instanceof AppError && e.code === code && re.test(e.message);

test('first use of the catalog recipe: kernel first, then mmdebstrap; its failure leaves nothing', async (t) => {
  const { svc, runner, kernels, repo, leftovers } = setup(t);
  runner.on('mmdebstrap', { code: 1, stderr: 'E: cannot reach the mirror' });
  await assert.rejects(
    svc.ensure('debian-bookworm', quietContext()),
    (e: unknown) =>
      e instanceof AppError &&
      /mmdebstrap failed \(exit 1\) building debian-bookworm/.test(e.message) &&
      /cannot reach the mirror/.test(e.hint ?? ''),
  );
  assert.deepEqual(kernels.ensured, ['debian-bookworm-cloud']);
  const argv = runner.callsTo('mmdebstrap')[0] ?? [];
  assert.ok(argv.includes('bookworm') && argv.some((a) => a.startsWith('--include=') && a.includes('openssh-server')));
  assert.deepEqual(repo.list(), []);
  assert.deepEqual(leftovers(), []);
});

test('ensure of a name that is neither local, a recipe nor a catalog bundle is notFound', async (t) => {
  const { svc, runner } = setup(t);
  await assert.rejects(svc.ensure('nope', quietContext()), isApp('not_found', /image "nope" does not exist/));
  assert.deepEqual(runner.calls, []);
});

test('pulling the catalog recipe refuses flags that would change it, naming them', async (t) => {
  const { svc, runner } = setup(t);
  await assert.rejects(
    svc.pull({ ref: 'debian-bookworm', kernel_ref: 'k1', name: 'other' }, quietContext()),
    isApp('bad_request', /name, kernel_ref cannot be used when pulling the catalog image "debian-bookworm"/),
  );
  assert.deepEqual(runner.calls, []);
});

test('a catalog bundle whose sha256 does not match is refused and leaves nothing', async (t) => {
  const { root, svc, catalog, repo, leftovers } = setup(t);
  const rootfs = join(root, 'rootfs.ext4');
  writeFileSync(rootfs, Buffer.alloc(4096));
  const out = join(root, 'team.tar.zst');
  await writeBundle(
    rootfs,
    {
      format: 1,
      name: 'team-dev',
      distro: 'debian',
      arch: 'x86_64',
      kernel_ref: 'k1',
      rootfs_bytes: 4096,
      assets_version: 1,
      created_at: '2026-01-01T00:00:00.000Z',
    },
    out,
  );
  catalog.bundles = [
    { name: 'team-dev', distro: 'debian', url: `file://${out}`, sha256: 'b'.repeat(64), kernelRef: 'k1' },
  ];
  await assert.rejects(
    svc.ensure('team-dev', quietContext()),
    (e: unknown) => e instanceof AppError && /sha256/.test(e.message),
  );
  assert.deepEqual(repo.list(), []);
  assert.deepEqual(leftovers(), []);
});

test('delete is refused while VMs use the image; otherwise row and dir go', async (t) => {
  let users = ['box1'];
  const { root, svc, repo } = setup(t, () => users);
  const dir = join(root, 'img');
  mkdirSync(dir);
  const row = imageRow({
    id: 'abc',
    name: 'img',
    source: 'test',
    dir,
    rootfsPath: join(dir, 'rootfs.ext4'),
    kernelName: 'k1',
  });
  repo.insert(row);
  await assert.rejects(svc.delete('img'), isApp('precondition', /image "img" is used by VM box1/));
  assert.ok(repo.byName('img'));
  users = [];
  assert.deepEqual(await svc.delete('img'), { name: 'img' });
  assert.equal(repo.byName('img'), undefined);
  assert.equal(existsSync(dir), false);
});

test('register: a rootfs that is not ext4 is refused; an ext4 one becomes an unmanaged image with its own kernel copy', async (t) => {
  const { root, svc, repo, runner } = setup(t);
  const notExt4 = join(root, 'plain.img');
  writeFileSync(notExt4, Buffer.alloc(4096));
  await assert.rejects(
    svc.register({ name: 'mine', rootfs: notExt4 }, quietContext()),
    isApp('bad_request', /rootfs .* is not an ext4 filesystem image/),
  );
  await assert.rejects(
    svc.register({ name: 'mine', rootfs: 'relative.img' }, quietContext()),
    isApp('bad_request', /rootfs must be an absolute path/),
  );
  const ext4 = join(root, 'root.ext4');
  const img = Buffer.alloc(4096);
  img.writeUInt16LE(0xef53, 1080);
  writeFileSync(ext4, img);
  const row = await svc.register({ name: 'mine', rootfs: ext4 }, quietContext());
  assert.equal(row.managed, false);
  assert.equal(row.rootfsPath, ext4);
  assert.equal(row.kernelName, 'k1');
  assert.ok(existsSync(join(row.dir, 'kernel', 'bzImage')));
  assert.equal(repo.byName('mine')?.id, row.id);
  await assert.rejects(svc.register({ name: 'mine', rootfs: ext4 }, quietContext()), isApp('already_exists', /mine/));
  const promoted = await svc.promote('mine');
  assert.equal(promoted.managed, true);
  assert.ok(existsSync(join(row.dir, 'rootfs.ext4')));
  await assert.rejects(svc.promote('mine'), isApp('precondition', /already managed/));
  assert.deepEqual(runner.calls, []);
});

test('image names are checked before anything runs', async (t) => {
  const { svc, runner } = setup(t);
  await assert.rejects(
    svc.buildCustom({ name: 'Bad_Name!' }, quietContext()),
    isApp('bad_request', /invalid image name "Bad_Name!": character "B" at position 1/),
  );
  await assert.rejects(
    svc.buildCustom({ name: 'ok', packages: ['good', 'bad pkg'] }, quietContext()),
    isApp('bad_request', /invalid package name "bad pkg"/),
  );
  assert.deepEqual(runner.calls, []);
});
