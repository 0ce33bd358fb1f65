import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test, type TestContext } from 'node:test';
import type { KernelCatalogEntry } from '../../catalog/kernels.js';
import { AppError } from '../../errors.js';
import { openStore } from '../../store/db.js';
import { KernelRepo, type KernelRow } from '../../store/kernels.js';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { Paths } from '../../system/paths.js';
import { nullLogger, quietContext } from '../context.js';
import { KernelService, type KernelCatalog } from './service.js';

/*
 * KernelService against the fake runner (apt, dpkg-deb, depmod never run for
 * real here), a fake catalog and the real store in memory: what it refuses,
 * what it asks the host for, and that a failed pull leaves nothing behind.
 */

const SHA = 'c'.repeat(64);

class FakeCatalog implements KernelCatalog {
  asked = 0;
  constructor(private readonly entries: KernelCatalogEntry[]) {}
  async kernels(): Promise<KernelCatalogEntry[]> {
    this.asked++;
    return this.entries;
  }
  async kernel(name: string): Promise<KernelCatalogEntry | undefined> {
    this.asked++;
    return this.entries.find((e) => e.name === name);
  }
}

function setup(t: TestContext, entries: KernelCatalogEntry[]) {
  const root = mkdtempSync(join(tmpdir(), 'kernunit-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  const runner = new FakeRunner();
  t.after(() => runner.assertNoUnexpected());
  const repo = new KernelRepo(openStore(':memory:'));
  const catalog = new FakeCatalog(entries);
  const svc = new KernelService(paths, repo, runner, nullLogger, new AbortController().signal, {
    catalog,
    fetchPolicy: { insecureHosts: [] },
  });
  /** Work dirs left in tmp/ and kernel dirs: none after a failure. */
  const leftovers = (): string[] =>
    [paths.tmpDir, paths.kernelsDir].flatMap((d) => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : []));
  return { root, paths, runner, repo, catalog, svc, leftovers };
}

const DISTRO: KernelCatalogEntry = {
  kind: 'distro',
  name: 'debian-bookworm-cloud',
  distro: 'debian',
  package: 'linux-image-cloud-amd64',
};

function row(name: string, dir: string): KernelRow {
  return {
    name,
    distro: 'debian',
    arch: 'x86_64',
    version: '6.1.0-9',
    format: 'bzImage',
    source: 'test',
    sha256: SHA,
    dir,
    hasInitrd: true,
    hasModules: false,
    moduleCount: 0,
    traits: {},
    createdAt: 'now',
  };
}

const isApp =
  (code: string, re: RegExp) =>
  (e: unknown): boolean =>
    e instanceof AppError && e.code === code && re.test(e.message);

test('catalog(): every catalog entry, pulled or available, with the pulled version', async (t) => {
  const tarball: KernelCatalogEntry = {
    kind: 'tarball',
    name: 'team-k',
    distro: 'fedora',
    version: '6.9',
    url: 'https://example.com/k.tar.zst',
    sha256: SHA,
    size: 1234,
  };
  const { svc, repo, root } = setup(t, [DISTRO, tarball]);
  repo.insert(row('debian-bookworm-cloud', join(root, 'k')));
  assert.deepEqual(await svc.catalog(), [
    {
      name: 'debian-bookworm-cloud',
      kind: 'distro',
      distro: 'debian',
      version: '6.1.0-9',
      size: null,
      state: 'pulled',
    },
    { name: 'team-k', kind: 'tarball', distro: 'fedora', version: '6.9', size: 1234, state: 'available' },
  ]);
});

test('a name that is not in the catalog is notFound before anything runs', async (t) => {
  const { svc, runner } = setup(t, [DISTRO]);
  await assert.rejects(
    svc.pull('other', false, quietContext()),
    isApp('not_found', /kernel "other" is not in the catalog/),
  );
  await assert.rejects(svc.pull('../x', false, quietContext()), isApp('bad_request', /invalid kernel name/));
  assert.deepEqual(runner.calls, []);
});

test('an installed kernel is not pulled again without force; ensure() returns it without asking the catalog', async (t) => {
  const { svc, repo, root, catalog } = setup(t, [DISTRO]);
  repo.insert(row('debian-bookworm-cloud', join(root, 'k')));
  await assert.rejects(
    svc.pull('debian-bookworm-cloud', false, quietContext()),
    isApp('already_exists', /already pulled/),
  );
  assert.equal((await svc.ensure('debian-bookworm-cloud', quietContext())).version, '6.1.0-9');
  assert.equal(catalog.asked, 0);
});

test('distro kernel: an apt index that does not know the package is a precondition naming apt-get update; nothing is left', async (t) => {
  const { svc, runner, leftovers, repo } = setup(t, [DISTRO]);
  runner.on('apt-cache', { code: 100, stderr: 'E: No packages found' });
  await assert.rejects(svc.pull('debian-bookworm-cloud', false, quietContext()), (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'precondition');
    assert.match(e.message, /the host's package index does not know linux-image-cloud-amd64/);
    assert.match(e.hint ?? '', /apt-get update/);
    return true;
  });
  assert.deepEqual(runner.callsTo('apt-cache')[0], [
    'apt-cache',
    'depends',
    '--no-recommends',
    '--no-suggests',
    'linux-image-cloud-amd64',
  ]);
  assert.deepEqual(repo.list(), []);
  assert.deepEqual(leftovers(), []);
});

test('distro kernel: apt-get download producing no .deb fails naming the package; only downloaded, never installed', async (t) => {
  const { svc, runner, leftovers } = setup(t, [DISTRO]);
  runner
    .on('apt-cache', { stdout: 'linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-9-cloud-amd64\n' })
    .on('apt-get', {});
  await assert.rejects(
    svc.pull('debian-bookworm-cloud', false, quietContext()),
    isApp('operation_failed', /apt-get download linux-image-6\.1\.0-9-cloud-amd64 produced no \.deb file/),
  );
  const apt = runner.callsTo('apt-get');
  assert.deepEqual(apt, [['apt-get', 'download', '-q', 'linux-image-6.1.0-9-cloud-amd64']]);
  assert.deepEqual(leftovers(), []);
});

test('tarball kernel: a download whose sha256 does not match is refused and leaves nothing', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'kerntar-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const file = join(root, 'k.tar.zst');
  writeFileSync(file, Buffer.from('not the pinned kernel'));
  const entry: KernelCatalogEntry = {
    kind: 'tarball',
    name: 'team-k',
    distro: 'debian',
    version: '6.9',
    url: pathToFileURL(file).href,
    sha256: SHA,
  };
  const { svc, runner, leftovers, repo } = setup(t, [entry]);
  await assert.rejects(
    svc.pull('team-k', false, quietContext()),
    (e: unknown) => e instanceof AppError && /sha256|corrupt|truncated/.test(e.message),
  );
  assert.deepEqual(runner.calls, []);
  assert.deepEqual(repo.list(), []);
  assert.deepEqual(leftovers(), []);
});

test('import: paths must be absolute and exist; --from needs a kernel in the directory', async (t) => {
  const { svc, root, runner, repo } = setup(t, [DISTRO]);
  await assert.rejects(
    svc.import({ name: 'mine', kernel: 'vmlinux' }, quietContext()),
    isApp('bad_request', /kernel must be an absolute path: vmlinux/),
  );
  await assert.rejects(
    svc.import({ name: 'mine', kernel: join(root, 'missing') }, quietContext()),
    isApp('not_found', /kernel .*missing does not exist/),
  );
  const empty = join(root, 'empty');
  mkdirSync(empty);
  await assert.rejects(svc.import({ name: 'mine', from: empty }, quietContext()), isApp('bad_request', /no kernel in/));
  await assert.rejects(
    svc.import({ name: 'mine' }, quietContext()),
    isApp('bad_request', /needs kernel \(a file\) or from \(a directory\)/),
  );
  assert.deepEqual(runner.calls, []);
  assert.deepEqual(repo.list(), []);
});

test('delete removes the row and the directory', async (t) => {
  const { svc, repo, root } = setup(t, [DISTRO]);
  const dir = join(root, 'kdir');
  mkdirSync(dir);
  repo.insert(row('gone', dir));
  assert.deepEqual(await svc.delete('gone'), { name: 'gone' });
  assert.equal(repo.get('gone'), undefined);
  assert.equal(existsSync(dir), false);
  await assert.rejects(svc.delete('gone'), isApp('not_found', /kernel "gone" is not installed/));
});
