import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import { FakeRegistry, sha256 } from '../../test/helpers/registry.js';
import { BlobCache } from './blobcache.js';
import { parseReference } from './reference.js';
import { RegistryClient } from './registry.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'banger-blobcache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const hex = (d: string): string => d.slice('sha256:'.length);

test('put stores a verified blob under <dir>/<hex>; has/path agree', async (t) => {
  const dir = join(tempDir(t), 'blobs');
  const cache = new BlobCache(dir);
  const data = Buffer.from('hello blob');
  const d = sha256(data);
  assert.equal(await cache.has(d), false);
  const p = await cache.put(d, Readable.from([data.subarray(0, 3), data.subarray(3)]));
  assert.equal(p, join(dir, hex(d)));
  assert.equal(cache.path(d), p);
  assert.equal(await cache.has(d), true);
  assert.deepEqual(readFileSync(p), data);
  assert.deepEqual(readdirSync(dir), [hex(d)]);
});

test('put with content that does not match the digest deletes the temp file and names the digest', async (t) => {
  const dir = tempDir(t);
  const cache = new BlobCache(dir);
  const d = sha256('expected');
  await assert.rejects(cache.put(d, Readable.from([Buffer.from('something else')])), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'operation_failed');
    assert.match(e.message, new RegExp(`blob ${d} failed verification`));
    return true;
  });
  assert.equal(await cache.has(d), false);
  assert.deepEqual(readdirSync(dir), []);
});

test('a failing source leaves nothing behind', async (t) => {
  const dir = tempDir(t);
  const cache = new BlobCache(dir);
  const d = sha256('x');
  const failing = new Readable({
    read() {
      this.destroy(new Error('connection cut'));
    },
  });
  await assert.rejects(cache.put(d, failing), /connection cut/);
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(
    cache.put(d, () => Promise.reject(new AppError('not_found', 'no such blob'))),
    /no such blob/,
  );
});

test('an already cached blob is not fetched again', async (t) => {
  const cache = new BlobCache(tempDir(t));
  const data = Buffer.from('cached');
  const d = sha256(data);
  await cache.put(d, Readable.from([data]));
  let opened = 0;
  const p = await cache.put(d, () => {
    opened++;
    return Promise.resolve(Readable.from([data]));
  });
  assert.equal(opened, 0);
  assert.equal(p, cache.path(d));
});

test('concurrent puts of one digest share one download from the registry', async (t) => {
  const r = await FakeRegistry.start();
  t.after(() => r.stop());
  const img = await r.pushImage('app', 'v1', {
    layers: [{ files: { big: 'x'.repeat(100_000) }, compression: 'gzip' }],
  });
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  r.blobDelayMs = 100;
  const ref = parseReference(`${r.host}/app:v1`);
  const client = new RegistryClient({ insecureHosts: [] });
  const cache = new BlobCache(tempDir(t));
  const paths = await Promise.all(
    Array.from({ length: 5 }, () => cache.put(layer.digest, () => client.blob(ref, layer.digest))),
  );
  assert.ok(paths.every((p) => p === cache.path(layer.digest)));
  assert.equal(r.requests((q) => q.path.endsWith(`/blobs/${layer.digest}`)).length, 1);
  assert.deepEqual(readFileSync(cache.path(layer.digest)), layer.blob);
});

test('a corrupt download through the registry client is not cached', async (t) => {
  const r = await FakeRegistry.start();
  t.after(() => r.stop());
  const img = await r.pushImage('app', 'v1', { layers: [{ files: { f: 'data' }, compression: 'zstd' }] });
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  r.corrupt.add(layer.digest);
  const ref = parseReference(`${r.host}/app:v1`);
  const client = new RegistryClient({ insecureHosts: [] });
  const dir = tempDir(t);
  const cache = new BlobCache(dir);
  await assert.rejects(
    cache.put(layer.digest, () => client.blob(ref, layer.digest)),
    new RegExp(`blob ${layer.digest}.*failed verification`),
  );
  assert.deepEqual(readdirSync(dir), []);
});

test('prune removes blobs not kept and stale temp files; dryRun only counts', async (t) => {
  const dir = tempDir(t);
  const cache = new BlobCache(dir);
  const a = Buffer.from('aaaa');
  const b = Buffer.from('bbbbbbbb');
  const c = Buffer.from('cc');
  const [da, db, dc] = [sha256(a), sha256(b), sha256(c)];
  await cache.put(da, Readable.from([a]));
  await cache.put(db, Readable.from([b]));
  await cache.put(dc, Readable.from([c]));
  writeFileSync(join(dir, `.tmp-${hex(da)}-abc`), 'partial');
  writeFileSync(join(dir, 'README'), 'not a blob');

  const dry = await cache.prune(new Set([da]), true);
  assert.deepEqual(dry, { blobs: 3, bytes: b.length + c.length + 'partial'.length });
  assert.equal(readdirSync(dir).length, 5);

  const real = await cache.prune(new Set([da, hex(dc)]), false);
  assert.deepEqual(real, { blobs: 2, bytes: b.length + 'partial'.length });
  assert.deepEqual(readdirSync(dir).sort(), ['README', hex(da), hex(dc)].sort());
  assert.equal(existsSync(cache.path(db)), false);

  assert.deepEqual(await new BlobCache(join(dir, 'missing')).prune(new Set(), false), { blobs: 0, bytes: 0 });
});

test('malformed digests are refused', (t) => {
  const cache = new BlobCache(tempDir(t));
  for (const d of ['sha256:abc', 'md5:' + 'a'.repeat(32), '../etc/passwd', `sha256:${'A'.repeat(64)}`]) {
    assert.throws(
      () => cache.path(d),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request',
    );
  }
});
