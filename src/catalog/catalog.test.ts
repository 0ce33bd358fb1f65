import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../errors.js';
import type { HttpFetch } from '../net/transport.js';
import { Catalog, CATALOG_URL_TTL_MS } from './catalog.js';

const SHA = 'a'.repeat(64);

function doc(kernelName: string, imageName = 'team-dev'): string {
  return JSON.stringify({
    kernels: [
      { name: kernelName, distro: 'debian', version: '6.1', url: 'https://example.com/k.tar.zst', sha256: SHA },
    ],
    images: [{ name: imageName, tarball_url: 'https://example.com/i.tar.zst', tarball_sha256: SHA }],
  });
}

/** An HttpFetch that serves `body()` for every URL and counts the requests; nothing leaves the process. */
function servingFetch(body: () => string | Error): { fetch: HttpFetch; urls: string[] } {
  const urls: string[] = [];
  const fetch: HttpFetch = async (url) => {
    urls.push(url.href);
    const b = body();
    if (b instanceof Error) throw b;
    return new Response(b, { status: 200, headers: { 'content-length': String(Buffer.byteLength(b)) } });
  };
  return { fetch, urls };
}

function urlCatalog(fetch: HttpFetch, now: () => number): Catalog {
  return new Catalog({
    source: 'https://catalog.example.com/catalog.json',
    policy: { insecureHosts: [] },
    http: fetch,
    signal: new AbortController().signal,
    now,
  });
}

test('a catalog URL is downloaded once per TTL, shared by concurrent and later calls', async () => {
  let clock = 1_000;
  let version = 'k1';
  const { fetch, urls } = servingFetch(() => doc(version));
  const cat = urlCatalog(fetch, () => clock);
  const [a, b, c] = await Promise.all([cat.kernels(), cat.images(), cat.kernel('k1')]);
  assert.ok(a.some((k) => k.name === 'k1'));
  assert.equal(b[0]?.name, 'team-dev');
  assert.equal(c?.name, 'k1');
  await cat.kernels();
  await cat.image('team-dev');
  assert.equal(urls.length, 1, 'one download for five calls');
  version = 'k2';
  clock += CATALOG_URL_TTL_MS - 1;
  assert.ok(await cat.kernel('k1'), 'still cached just before the TTL');
  clock += 1;
  assert.ok(await cat.kernel('k2'), 'fetched again once the TTL passed');
  assert.equal(await cat.kernel('k1'), undefined);
  assert.equal(urls.length, 2);
});

test('a failed catalog download is not cached: the next call tries again', async () => {
  let fail = true;
  const { fetch, urls } = servingFetch(() =>
    fail ? Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) : doc('k1'),
  );
  const cat = urlCatalog(fetch, () => 0);
  await assert.rejects(cat.kernels(), (e: unknown) => e instanceof AppError && /connection refused/.test(e.message));
  fail = false;
  assert.ok(await cat.kernel('k1'));
  assert.equal(urls.length, 2);
});

test('a catalog larger than the cap is refused', async () => {
  const { fetch } = servingFetch(() => ' '.repeat(4 * 1024 * 1024 + 1));
  await assert.rejects(
    urlCatalog(fetch, () => 0).kernels(),
    (e: unknown) => e instanceof AppError && /larger than/.test(e.message),
  );
});

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'catalog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a catalog path is re-read when the file changes, and only then', async (t) => {
  const path = join(tempDir(t), 'catalog.json');
  writeFileSync(path, doc('k1'));
  utimesSync(path, 1000, 1000);
  const cat = new Catalog({ source: path, policy: { insecureHosts: [] }, signal: new AbortController().signal });
  assert.ok(await cat.kernel('k1'));
  writeFileSync(path, doc('k2'));
  utimesSync(path, 2000, 2000);
  assert.ok(await cat.kernel('k2'), 'an edit shows at once');
  assert.equal(await cat.kernel('k1'), undefined);
  rmSync(path);
  await assert.rejects(
    cat.kernels(),
    (e: unknown) =>
      e instanceof AppError && e.code === 'precondition' && /cannot read the catalog file .*ENOENT/.test(e.message),
  );
});

test('without a catalog file: the embedded entries, no file access', async () => {
  const cat = new Catalog({ source: undefined, policy: { insecureHosts: [] }, signal: new AbortController().signal });
  assert.deepEqual(
    (await cat.kernels()).map((k) => k.name),
    ['debian-bookworm-cloud'],
  );
  assert.deepEqual(await cat.images(), []);
  assert.equal(cat.recipe('debian-bookworm')?.kind, 'build');
  assert.equal(cat.baseRecipe('nope')?.name, 'debian-bookworm');
});

test('a bad image entry fails image lookups, naming the entry, but not kernel ones', async (t) => {
  const path = join(tempDir(t), 'catalog.json');
  writeFileSync(
    path,
    JSON.stringify({ images: [{ name: 'BAD NAME', tarball_url: 'https://x/y', tarball_sha256: SHA }] }),
  );
  const cat = new Catalog({ source: path, policy: { insecureHosts: [] }, signal: new AbortController().signal });
  assert.ok((await cat.kernels()).length > 0);
  await assert.rejects(cat.images(), (e: unknown) => e instanceof AppError && /images\[0\]\.name/.test(e.message));
});
