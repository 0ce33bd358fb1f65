import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../errors.js';
import {
  FakeRegistry,
  compress,
  layerMediaType,
  sha256,
  tarOf,
  type Compression,
} from '../../test/helpers/registry.js';
import { BlobCache } from './blobcache.js';
import { diffIdVerifier, layerCompression, openLayer, openVerifiedLayer, sniffCompression } from './layers.js';
import { parseReference } from './reference.js';
import { RegistryClient } from './registry.js';
import { untar } from '../../test/helpers/tar-zst.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'banger-layers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const FILES = { 'etc/': '', 'etc/motd': 'welcome\n', 'usr/bin/tool': '#!/bin/sh\necho hi\n' };

for (const how of ['gzip', 'zstd', 'none'] as Compression[]) {
  test(`openVerifiedLayer: ${how} layer → tar entries, diff_id checked`, async (t) => {
    const dir = tempDir(t);
    const tar = await tarOf(FILES);
    const blob = compress(tar, how);
    const path = join(dir, 'blob');
    writeFileSync(path, blob);
    const stream = await openVerifiedLayer(
      path,
      { mediaType: layerMediaType(how, 'oci'), digest: sha256(blob) },
      0,
      sha256(tar),
    );
    assert.deepEqual(await untar(stream), { 'etc/motd': 'welcome\n', 'usr/bin/tool': '#!/bin/sh\necho hi\n' });
  });
}

test('a diff_id mismatch fails the stream naming the layer index and digests', async (t) => {
  const dir = tempDir(t);
  const tar = await tarOf(FILES);
  const blob = compress(tar, 'gzip');
  const path = join(dir, 'blob');
  writeFileSync(path, blob);
  const wrong = sha256('other');
  const stream = await openVerifiedLayer(
    path,
    { mediaType: layerMediaType('gzip', 'docker'), digest: sha256(blob) },
    3,
    wrong,
  );
  await assert.rejects(untar(stream), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'operation_failed');
    assert.match(e.message, /^layer 3 \(sha256:[a-f0-9]{64}\)/);
    assert.ok(e.message.includes(sha256(tar)), e.message);
    assert.ok(e.message.includes(`rootfs.diff_ids[3] is ${wrong}`), e.message);
    assert.ok(e.message.includes(sha256(blob)));
    return true;
  });
});

test('diffIdVerifier passes the bytes through unchanged', async () => {
  const v = diffIdVerifier({ index: 0, diffId: sha256('abcdef') });
  const chunks: Buffer[] = [];
  v.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    v.on('end', resolve);
    v.on('error', reject);
  });
  v.write('abc');
  v.end('def');
  await ended;
  assert.equal(Buffer.concat(chunks).toString(), 'abcdef');
});

test('an uncompressed layer mislabelled as gzip is still read (content decides)', async (t) => {
  const dir = tempDir(t);
  const tar = await tarOf(FILES);
  const path = join(dir, 'blob');
  writeFileSync(path, tar);
  const stream = await openLayer(path, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.equal(Object.keys(await untar(stream)).length, 2);
});

test('a corrupt gzip layer fails with an operationFailed naming the layer', async (t) => {
  const dir = tempDir(t);
  const blob = compress(await tarOf(FILES), 'gzip');
  const path = join(dir, 'blob');
  writeFileSync(path, blob.subarray(0, blob.length - 20));
  const stream = await openLayer(path, layerMediaType('gzip', 'oci'), { label: 'layer 1 (sha256:x)' });
  await assert.rejects(
    untar(stream),
    (e: unknown) =>
      e instanceof AppError && /^layer 1 \(sha256:x\) is corrupt: gzip decompression failed/.test(e.message),
  );
});

test('unsupported layer media types are a badRequest', async (t) => {
  const path = join(tempDir(t), 'blob');
  writeFileSync(path, 'x');
  await assert.rejects(
    openLayer(path, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'),
    (e: unknown) => e instanceof AppError && e.code === 'bad_request',
  );
});

test('layerCompression and sniffCompression', () => {
  assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
  assert.equal(layerCompression('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'), 'gzip');
  assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar'), 'none');
  assert.equal(layerCompression('application/json'), undefined);
  assert.equal(layerCompression('toString'), undefined);
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.equal(sniffCompression(Buffer.from('etc/')), 'none');
  assert.equal(sniffCompression(Buffer.alloc(0)), 'none');
});

test('end to end: resolve, cache every layer, unpack gzip + zstd + plain layers with diff_ids checked', async (t) => {
  const r = await FakeRegistry.start({ auth: 'bearer' });
  t.after(() => r.stop());
  await r.pushImage('team/app', 'v1', {
    layers: [
      { files: { 'a.txt': 'A' }, compression: 'gzip' },
      { files: { 'b.txt': 'B' }, compression: 'zstd' },
      { files: { 'c.txt': 'C' }, compression: 'none' },
    ],
  });
  const ref = parseReference(`${r.host}/team/app:v1`);
  const client = new RegistryClient({ insecureHosts: [] });
  const { manifest, config } = await client.resolve(ref);
  const cache = new BlobCache(tempDir(t));
  const seen: Record<string, string> = {};
  for (const [i, layer] of manifest.layers.entries()) {
    const path = await cache.put(layer.digest, () => client.blob(ref, layer.digest));
    Object.assign(seen, await untar(await openVerifiedLayer(path, layer, i, config.rootfs.diff_ids[i] ?? '')));
  }
  assert.deepEqual(seen, { 'a.txt': 'A', 'b.txt': 'B', 'c.txt': 'C' });
});
