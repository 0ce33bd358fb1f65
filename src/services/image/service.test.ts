import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FakeRegistry } from '../../../test/helpers/registry.js';
import { AppError } from '../../errors.js';
import { openStore } from '../../store/db.js';
import { ImageRepo, type ImageRow } from '../../store/images.js';
import type { KernelRow } from '../../store/kernels.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { Paths } from '../../system/paths.js';
import { nullLogger, quietContext } from '../context.js';
import { Catalog } from '../../catalog/catalog.js';
import { readRuntimeConfig } from './oci-config.js';
import { RootfsBuilder } from './pipeline.js';
import { ImageService, type ImageKernels, type PullParams } from './service.js';

/*
 * OCI pulls through the image service against the in-process fake registry on
 * 127.0.0.1, with the ext4 tools faked (mkfs.ext4 and debugfs are exercised
 * for real by the integration tier).
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
    hasInitrd: true,
    hasModules: false,
    moduleCount: 0,
    traits: {},
    createdAt: 'now',
  };
}

async function setup(t: TestContext) {
  const root = mkdtempSync(join(tmpdir(), 'imgsvc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  const kernels = new Map<string, KernelRow>();
  for (const name of ['k1', 'k2']) {
    const dir = join(root, 'kernels', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'bzImage'), name);
    kernels.set(name, kernelRow(dir, name));
  }
  const kernelService: ImageKernels = {
    ensure: async (name: string) => {
      const k = kernels.get(name);
      if (k === undefined) throw new AppError('not_found', `no kernel ${name}`);
      return k;
    },
    files: () => Promise.reject(new Error('not used')),
    bootReady: (f) => Promise.resolve(f),
    import: () => Promise.reject(new Error('not used')),
    delete: () => Promise.reject(new Error('not used')),
  };
  const runner = new FakeRunner();
  t.after(() => runner.assertNoUnexpected());
  /** Root filesystems written (one per image produced). */
  let builds = 0;
  const builder = new RootfsBuilder(runner, nullLogger, false, 2 ** 30);
  const build = builder.build.bind(builder);
  builder.build = (...args) => {
    builds++;
    return build(...args);
  };
  const repo = new ImageRepo(openStore(':memory:'));
  const svc = new ImageService(paths, repo, kernelService, runner, nullLogger, new AbortController().signal, {
    mirror: undefined,
    isRoot: false,
    defaultImage: 'debian-bookworm',
    usedBy: () => [],
    defaultKernel: 'k1',
    insecureHosts: [],
    maxUnpackedBytes: 2 ** 30,
    builder,
    catalog: new Catalog({ source: undefined, policy: { insecureHosts: [] }, signal: new AbortController().signal }),
  });
  const reg = await FakeRegistry.start();
  t.after(() => reg.stop());
  await reg.pushImage('team/app', 'v1', {
    layers: [
      {
        compression: 'gzip',
        files: { 'lib/systemd/systemd': 'init\n', 'etc/os-release': 'ID=debian\n', 'root/.bashrc': '# rc\n' },
      },
    ],
  });
  // Slow blobs, so the pulls of a test overlap for sure.
  reg.blobDelayMs = 50;
  const ref = `${reg.host}/team/app:v1`;
  const rootfsBuilds = (): number => builds;
  return { svc, repo, reg, ref, rootfsBuilds };
}

test('concurrent pulls of one reference under different names make two images, each with its own name', async (t) => {
  const { svc, repo, ref, rootfsBuilds } = await setup(t);
  const [a, b] = await Promise.all([
    svc.pull({ ref, name: 'app-a' }, quietContext()),
    svc.pull({ ref, name: 'app-b' }, quietContext()),
  ]);
  assert.equal(a.name, 'app-a');
  assert.equal(b.name, 'app-b', "the second caller gets the image it asked for, not the first caller's");
  assert.notEqual(a.id, b.id);
  assert.deepEqual(
    repo
      .list()
      .map((i) => i.name)
      .sort(),
    ['app-a', 'app-b'],
  );
  assert.equal(rootfsBuilds(), 2);
});

test('concurrent pulls of one name that differ in --size or --kernel-ref are not merged: one is published, the other refused', async (t) => {
  const { svc, repo, ref } = await setup(t);
  const cases: [string, PullParams, PullParams, (row: ImageRow, p: PullParams) => boolean][] = [
    [
      'size',
      { ref, name: 'sized', size_bytes: 2 ** 30 },
      { ref, name: 'sized', size_bytes: 2 * 2 ** 30 },
      (row, p) => row.sizeBytes === p.size_bytes,
    ],
    [
      'kernel',
      { ref, name: 'kernelled', kernel_ref: 'k1' },
      { ref, name: 'kernelled', kernel_ref: 'k2' },
      (row, p) => row.kernelName === p.kernel_ref,
    ],
  ];
  for (const [what, p1, p2, matches] of cases) {
    const results = await Promise.allSettled([svc.pull(p1, quietContext()), svc.pull(p2, quietContext())]);
    const won = results.findIndex((r) => r.status === 'fulfilled');
    const lost = results[1 - won];
    assert.ok(
      won >= 0 && lost?.status === 'rejected',
      `${what}: exactly one pull publishes (${results.map((r) => r.status).join(', ')})`,
    );
    assert.ok(
      lost.reason instanceof AppError && lost.reason.code === 'already_exists',
      `${what}: ${String(lost.reason)}`,
    );
    const row = repo.byName(p1.name as string);
    assert.ok(row && matches(row, won === 0 ? p1 : p2), `${what}: the published image is the one its caller asked for`);
  }
});

test('concurrent pulls of the same reference, name, size and kernel share one pull', async (t) => {
  const { svc, repo, reg, ref, rootfsBuilds } = await setup(t);
  const [a, b] = await Promise.all([
    svc.pull({ ref, name: 'shared' }, quietContext()),
    svc.pull({ ref, name: 'shared' }, quietContext()),
  ]);
  assert.equal(a.id, b.id);
  assert.deepEqual(
    repo.list().map((i) => i.name),
    ['shared'],
  );
  assert.equal(rootfsBuilds(), 1, 'one root filesystem built');
  const layerGets = reg.requests((r) => r.method === 'GET' && r.path.includes('/blobs/')).length;
  assert.equal(layerGets, 2, 'config and layer blob fetched once each');
});

test('an OCI pull records the image config (Env, WorkingDir, User, Entrypoint, Cmd) in manifest.json', async (t) => {
  const { svc, reg } = await setup(t);
  await reg.pushImage('team/cfg', 'v1', {
    layers: [{ compression: 'gzip', files: { 'etc/os-release': 'ID=alpine\n' } }],
    env: ['PATH=/opt/app/bin:/usr/bin', 'LANG=C.UTF-8'],
    runtime: { WorkingDir: '/srv/app', User: '1000:1000', Entrypoint: ['/entry.sh'], Cmd: ['serve', '--port', '80'] },
  });
  const row = await svc.pull({ ref: `${reg.host}/team/cfg:v1`, name: 'cfg' }, quietContext());
  assert.deepEqual(await readRuntimeConfig(row.dir), {
    env: ['PATH=/opt/app/bin:/usr/bin', 'LANG=C.UTF-8'],
    working_dir: '/srv/app',
    user: '1000:1000',
    entrypoint: ['/entry.sh'],
    cmd: ['serve', '--port', '80'],
  });
});

test('an OCI pull whose config Env entry is not NAME=value is refused, naming it, and nothing is published', async (t) => {
  const { svc, repo, reg } = await setup(t);
  await reg.pushImage('team/badenv', 'v1', {
    layers: [{ compression: 'gzip', files: { 'etc/os-release': 'ID=alpine\n' } }],
    env: ['PATH=/usr/bin', 'JUSTANAME'],
  });
  await assert.rejects(
    svc.pull({ ref: `${reg.host}/team/badenv:v1`, name: 'badenv' }, quietContext()),
    (e: unknown) =>
      e instanceof AppError && e.code === 'bad_request' && /Env\[1\] "JUSTANAME" is not NAME=value/.test(e.message),
  );
  assert.equal(repo.byName('badenv'), undefined);
});
