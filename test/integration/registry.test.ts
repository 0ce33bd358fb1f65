/**
 * Integration (network: loopback only — Debian's docker-registry started here
 * on 127.0.0.1 with a temp store): RegistryClient, BlobCache and the layer
 * readers against the real distribution server, with images built by umoci
 * and pushed by skopeo, plus raw pushes for an OCI index and a zstd layer.
 * Skips, saying why, when docker-registry, skopeo, umoci or htpasswd is missing
 * (fails instead with CI=true).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AppError } from '../../src/errors.js';
import { BlobCache } from '../../src/imagepull/blobcache.js';
import { openVerifiedLayer } from '../../src/imagepull/layers.js';
import { parseReference, type ImageRef } from '../../src/imagepull/reference.js';
import { RegistryClient } from '../../src/imagepull/registry.js';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  REAL_REGISTRY_PACKAGES,
  REAL_REGISTRY_TOOLS,
  RealRegistry,
  skopeoCopy,
  umociImage,
} from '../helpers/registry.js';
import { missingTools, requirements } from '../helpers/requirements.js';
import { untar } from '../helpers/tar-zst.js';

const skip = requirements(missingTools(REAL_REGISTRY_TOOLS), REAL_REGISTRY_PACKAGES);

let work = '';
let anon: RealRegistry | undefined;
let locked: RealRegistry | undefined;

before(async () => {
  if (skip !== false) return;
  work = mkdtempSync(join(tmpdir(), 'banger-it-registry-'));
  anon = await RealRegistry.start();
  locked = await RealRegistry.start({ username: 'alice', password: 's3cret' });
  const layout = umociImage(join(work, 'umoci'), 'v1', {
    'etc/motd': 'hello from umoci\n',
    'usr/share/doc/x': 'doc\n',
  });
  skopeoCopy(work, layout, 'v1', `${anon.host}/team/tiny:v1`);
  skopeoCopy(work, layout, 'v1', `${anon.host}/team/tiny:docker`, { format: 'v2s2' });
  skopeoCopy(work, layout, 'v1', `${locked.host}/private/tiny:v1`, { creds: 'alice:s3cret' });
});

after(async () => {
  await anon?.stop();
  await locked?.stop();
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

function must<T>(x: T | undefined): T {
  assert.ok(x !== undefined);
  return x;
}

/** Resolves ref, caches every layer through BlobCache, unpacks them with diff_id checks; returns the files seen. */
async function pullFiles(
  client: RegistryClient,
  ref: ImageRef,
): Promise<{ files: Record<string, string>; env: string[] | undefined; mediaType: string; layerTypes: string[] }> {
  const { manifest, config } = await client.resolve(ref);
  const cache = new BlobCache(join(work, 'blobs'));
  const files: Record<string, string> = {};
  for (const [i, layer] of manifest.layers.entries()) {
    const path = await cache.put(layer.digest, () => client.blob(ref, layer.digest));
    Object.assign(files, await untar(await openVerifiedLayer(path, layer, i, must(config.rootfs.diff_ids[i]))));
  }
  return {
    files,
    env: config.config?.Env,
    mediaType: manifest.mediaType,
    layerTypes: manifest.layers.map((l) => l.mediaType),
  };
}

test('umoci image pushed by skopeo: resolve (OCI and docker schema2) and unpack', { skip }, async () => {
  const client = new RegistryClient({ insecureHosts: [] });
  const reg = must(anon);
  const oci = await pullFiles(client, parseReference(`${reg.host}/team/tiny:v1`));
  assert.equal(oci.mediaType, OCI_MANIFEST);
  assert.equal(oci.files['etc/motd'], 'hello from umoci\n');
  assert.equal(oci.files['usr/share/doc/x'], 'doc\n');
  assert.ok(oci.env?.includes('FROM_UMOCI=1'), JSON.stringify(oci.env));

  const docker = await pullFiles(client, parseReference(`${reg.host}/team/tiny:docker`));
  assert.equal(docker.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.deepEqual(docker.layerTypes, ['application/vnd.docker.image.rootfs.diff.tar.gzip']);
  assert.equal(docker.files['etc/motd'], 'hello from umoci\n');
});

test(
  'OCI index with a zstd amd64 image and an arm64 image: amd64 is chosen, by tag and by digest',
  { skip },
  async () => {
    const reg = must(anon);
    const amd = await reg.pushImage('multi/app', undefined, {
      layers: [
        { files: { 'amd.txt': 'amd64\n' }, compression: 'zstd' },
        { files: { 'plain.txt': 'plain\n' }, compression: 'none' },
      ],
    });
    const arm = await reg.pushImage('multi/app', undefined, {
      layers: [{ files: { 'arm.txt': 'arm64\n' }, compression: 'gzip' }],
      architecture: 'arm64',
    });
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: arm.digest,
          size: arm.size,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        {
          mediaType: OCI_MANIFEST,
          digest: amd.digest,
          size: amd.size,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    };
    const indexDigest = await reg.putManifest('multi/app', 'latest', index, OCI_INDEX);
    const client = new RegistryClient({ insecureHosts: [] });
    for (const ref of [`${reg.host}/multi/app`, `${reg.host}/multi/app@${indexDigest}`]) {
      const resolved = await client.resolve(parseReference(ref));
      assert.equal(resolved.manifestDigest, amd.digest, ref);
    }
    const got = await pullFiles(client, parseReference(`${reg.host}/multi/app:latest`));
    assert.deepEqual(got.files, { 'amd.txt': 'amd64\n', 'plain.txt': 'plain\n' });
    assert.deepEqual(got.layerTypes, [
      'application/vnd.oci.image.layer.v1.tar+zstd',
      'application/vnd.oci.image.layer.v1.tar',
    ]);
  },
);

test('htpasswd registry: basic credentials from docker config; none or wrong ones fail clearly', { skip }, async () => {
  const reg = must(locked);
  const ref = parseReference(`${reg.host}/private/tiny:v1`);
  const config = (pw: string): string =>
    JSON.stringify({ auths: { [`http://${reg.host}`]: { auth: Buffer.from(`alice:${pw}`).toString('base64') } } });
  const got = await pullFiles(new RegistryClient({ insecureHosts: [], dockerConfig: config('s3cret') }), ref);
  assert.equal(got.files['etc/motd'], 'hello from umoci\n');

  await assert.rejects(new RegistryClient({ insecureHosts: [] }).resolve(ref), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.message, `registry ${reg.host} requires authentication`);
    assert.equal(e.hint, 'log in with docker login or add credentials to ~/.docker/config.json');
    return true;
  });
  await assert.rejects(
    new RegistryClient({ insecureHosts: [], dockerConfig: config('wrong') }).resolve(ref),
    (e: unknown) =>
      e instanceof AppError && e.code === 'precondition' && e.message.includes('rejected the credentials of alice'),
  );
});

test('missing tag and missing repository are notFound; a stopped registry is "cannot reach"', { skip }, async () => {
  const reg = must(anon);
  const client = new RegistryClient({ insecureHosts: [] });
  await assert.rejects(
    client.resolve(parseReference(`${reg.host}/team/tiny:nope`)),
    (e: unknown) =>
      e instanceof AppError && e.code === 'not_found' && /has no manifest nope in team\/tiny \(404/.test(e.message),
  );
  await assert.rejects(
    client.resolve(parseReference(`${reg.host}/team/absent:v1`)),
    (e: unknown) => e instanceof AppError && e.code === 'not_found',
  );
  const extra = await RealRegistry.start();
  const host = extra.host;
  await extra.stop();
  await assert.rejects(
    client.resolve(parseReference(`${host}/team/tiny:v1`)),
    (e: unknown) => e instanceof AppError && e.message.startsWith(`cannot reach registry ${host}: connection refused`),
  );
});
