import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import {
  DOCKER_MANIFEST,
  FakeRegistry,
  OCI_MANIFEST,
  dockerConfigFor,
  sha256,
  type FakeRegistryOptions,
} from '../../test/helpers/registry.js';
import { parseReference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry.js';

async function registry(t: TestContext, opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const r = await FakeRegistry.start(opts);
  t.after(() => r.stop());
  return r;
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A fetch that records every URL and calls the real one only for 127.0.0.1 (anything else would be a test bug). */
function recordingFetch(): { fetch: typeof globalThis.fetch; urls: string[] } {
  const urls: string[] = [];
  const f: typeof globalThis.fetch = (input, init) => {
    const href = input instanceof URL ? input.href : typeof input === 'string' ? input : input.url;
    urls.push(href);
    if (new URL(href).hostname !== '127.0.0.1') return Promise.reject(new Error(`test must not contact ${href}`));
    return globalThis.fetch(input, init);
  };
  return { fetch: f, urls };
}

function client(extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ insecureHosts: [], ...extra });
}

function isAppError(code: string, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  };
}

const ONE_LAYER = { layers: [{ files: { 'etc/hostname': 'box\n' }, compression: 'gzip' as const }] };

test('anonymous pull: resolve an OCI image by tag and stream its blobs', async (t) => {
  const r = await registry(t);
  const img = await r.pushImage('team/app', 'v1', {
    layers: [
      { files: { 'bin/': '', 'bin/hello': 'hi' }, compression: 'gzip' },
      { files: { 'etc/os-release': 'ID=test\n' }, compression: 'zstd' },
      { files: { 'root/.profile': '' }, compression: 'none' },
    ],
    env: ['A=1'],
  });
  const ref = parseReference(`${r.host}/team/app:v1`);
  const c = client();
  const got = await c.resolve(ref);
  assert.equal(got.manifestDigest, img.manifestDigest);
  assert.equal(got.configDigest, img.configDigest);
  assert.equal(got.manifest.mediaType, OCI_MANIFEST);
  assert.deepEqual(
    got.manifest.layers.map((l) => l.digest),
    img.layers.map((l) => l.digest),
  );
  assert.deepEqual(
    got.config.rootfs.diff_ids,
    img.layers.map((l) => l.diffId),
  );
  assert.deepEqual(got.config.config?.Env, ['A=1']);
  for (const l of img.layers) {
    assert.deepEqual(await readAll(await c.blob(ref, l.digest)), l.blob);
  }
  assert.ok(r.requests().every((q) => q.authorization === undefined));
  const manifestReq = r.requests((q) => q.path.includes('/manifests/'))[0];
  for (const type of [
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    OCI_MANIFEST,
    DOCKER_MANIFEST,
  ]) {
    assert.ok(manifestReq?.accept?.includes(type), `Accept lacks ${type}`);
  }
});

test('docker schema2 manifest and docker media types resolve', async (t) => {
  const r = await registry(t);
  const img = await r.pushImage('app', 'latest', { ...ONE_LAYER, flavor: 'docker' });
  const got = await client().resolve(parseReference(`${r.host}/app`));
  assert.equal(got.manifest.mediaType, DOCKER_MANIFEST);
  assert.equal(got.manifestDigest, img.manifestDigest);
  assert.equal(got.manifest.layers[0]?.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
});

test('resolve by digest verifies the manifest digest', async (t) => {
  const r = await registry(t);
  const img = await r.pushImage('app', undefined, ONE_LAYER);
  const got = await client().resolve(parseReference(`${r.host}/app@${img.manifestDigest}`));
  assert.equal(got.manifestDigest, img.manifestDigest);

  // The registry answers a digest request with other content.
  const other = await r.pushImage('app', 'other', { layers: [{ files: { x: 'y' }, compression: 'none' }] });
  const stored = r.manifests.get('app')?.get(other.manifestDigest);
  const fake = sha256('not this');
  assert.ok(stored !== undefined);
  r.manifests.get('app')?.set(fake, stored);
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/app@${fake}`)),
    isAppError('operation_failed', new RegExp(`hashes to ${other.manifestDigest}, not ${fake}`)),
  );
});

test('bearer flow: anonymous token from the realm, sent on every later request', async (t) => {
  const r = await registry(t, { auth: 'bearer' });
  const img = await r.pushImage('team/app', 'v1', ONE_LAYER);
  const ref = parseReference(`${r.host}/team/app:v1`);
  const c = client();
  const got = await c.resolve(ref);
  assert.equal(got.manifestDigest, img.manifestDigest);
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  assert.deepEqual(await readAll(await c.blob(ref, layer.digest)), layer.blob);

  const tokenReqs = r.requests((q) => q.path.startsWith('/token'));
  assert.equal(tokenReqs.length, 1, 'one token for the repository');
  const tokenUrl = new URL(tokenReqs[0]?.path ?? '', 'http://x');
  assert.equal(tokenUrl.searchParams.get('scope'), 'repository:team/app:pull');
  assert.equal(tokenUrl.searchParams.get('service'), 'fake-registry');
  assert.equal(tokenReqs[0]?.authorization, undefined);
  const v2 = r.requests((q) => q.path.startsWith('/v2/'));
  assert.equal(v2[0]?.authorization, undefined, 'first try is anonymous');
  assert.ok(
    v2.slice(1).every((q) => q.authorization === 'Bearer tok-1'),
    JSON.stringify(v2),
  );
});

test('bearer flow: a token that expires mid-pull is renewed once and the pull goes on; one that never works fails clearly', async (t) => {
  const r = await registry(t, { auth: 'bearer' });
  const img = await r.pushImage('team/app', 'v1', ONE_LAYER);
  const ref = parseReference(`${r.host}/team/app:v1`);
  const c = client();
  await c.resolve(ref);
  r.expireTokens();
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  assert.deepEqual(await readAll(await c.blob(ref, layer.digest)), layer.blob);
  assert.equal(r.requests((q) => q.path.startsWith('/token')).length, 2, 'a second token after the first expired');
  const blobReqs = r.requests((q) => q.path.endsWith(`/blobs/${layer.digest}`));
  assert.deepEqual(
    blobReqs.map((q) => q.authorization),
    ['Bearer tok-1', 'Bearer tok-2'],
  );

  // A token service whose tokens never work: one renewal, then a clear error, not a loop.
  r.tokensExpireAtOnce = true;
  r.expireTokens();
  const before = r.requests((q) => q.path.startsWith('/token')).length;
  await assert.rejects(
    c.blob(ref, layer.digest),
    isAppError('precondition', new RegExp(`^registry ${r.host} denied access to team/app \\(401`)),
  );
  assert.equal(r.requests((q) => q.path.startsWith('/token')).length, before + 1);
});

test('bearer flow: access_token field and Basic credentials to the token service', async (t) => {
  const r = await registry(t, {
    auth: 'bearer',
    tokenField: 'access_token',
    tokenRequiresLogin: true,
    username: 'alice',
    password: 'pw',
  });
  const img = await r.pushImage('app', 'v1', ONE_LAYER);
  const ref = parseReference(`${r.host}/app:v1`);
  const got = await client({ dockerConfig: dockerConfigFor(r.host, 'alice', 'pw') }).resolve(ref);
  assert.equal(got.manifestDigest, img.manifestDigest);
  const tokenReq = r.requests((q) => q.path.startsWith('/token'))[0];
  assert.equal(tokenReq?.authorization, `Basic ${Buffer.from('alice:pw').toString('base64')}`);

  await assert.rejects(client().resolve(ref), (e: unknown) => {
    isAppError('precondition', new RegExp(`registry ${r.host} requires authentication for app`))(e);
    assert.match((e as AppError).hint ?? '', /docker login/);
    return true;
  });
  await assert.rejects(
    client({ dockerConfig: dockerConfigFor(r.host, 'alice', 'wrong') }).resolve(ref),
    isAppError('precondition', new RegExp(`registry ${r.host} rejected the credentials of alice`)),
  );
});

test('basic auth: credentials from docker config, or a clear error without them', async (t) => {
  const r = await registry(t, { auth: 'basic', username: 'bob', password: 'hunter2' });
  const img = await r.pushImage('app', 'v1', ONE_LAYER);
  const ref = parseReference(`${r.host}/app:v1`);

  const got = await client({ dockerConfig: dockerConfigFor(r.host, 'bob', 'hunter2') }).resolve(ref);
  assert.equal(got.manifestDigest, img.manifestDigest);
  const basic = `Basic ${Buffer.from('bob:hunter2').toString('base64')}`;
  assert.ok(
    r
      .requests()
      .slice(1)
      .every((q) => q.authorization === basic),
  );

  await assert.rejects(client().resolve(ref), (e: unknown) => {
    isAppError('precondition', new RegExp(`^registry ${r.host.replace(/\./g, '\\.')} requires authentication$`))(e);
    assert.equal((e as AppError).hint, 'log in with docker login or add credentials to ~/.docker/config.json');
    return true;
  });
  await assert.rejects(
    client({ dockerConfig: dockerConfigFor(r.host, 'bob', 'nope') }).resolve(ref),
    isAppError('precondition', /rejected the credentials of bob for app \(401/),
  );
});

test('index: selects linux/amd64 among platforms (OCI index and docker manifest list)', async (t) => {
  const r = await registry(t);
  const arm = await r.pushImage('app', undefined, { ...ONE_LAYER, architecture: 'arm64' });
  const amd = await r.pushImage('app', undefined, { layers: [{ files: { amd: '64' }, compression: 'gzip' }] });
  const attestation = await r.pushImage('app', undefined, {
    layers: [{ files: { att: 'x' }, compression: 'none' }],
    architecture: 'unknown',
    os: 'unknown',
  });
  const indexDigest = r.pushIndex('app', 'multi', [
    { digest: arm.manifestDigest, os: 'linux', architecture: 'arm64', variant: 'v8' },
    { digest: amd.manifestDigest, os: 'linux', architecture: 'amd64' },
    { digest: attestation.manifestDigest, os: 'unknown', architecture: 'unknown' },
  ]);
  r.pushIndex(
    'app',
    'list',
    [
      { digest: arm.manifestDigest, os: 'linux', architecture: 'arm64' },
      { digest: amd.manifestDigest, os: 'linux', architecture: 'amd64' },
    ],
    'docker',
  );
  const c = client();
  for (const ref of [`${r.host}/app:multi`, `${r.host}/app:list`, `${r.host}/app@${indexDigest}`]) {
    const got = await c.resolve(parseReference(ref));
    assert.equal(got.manifestDigest, amd.manifestDigest, ref);
    assert.equal(got.configDigest, amd.configDigest);
  }

  r.pushIndex('app', 'armonly', [
    { digest: arm.manifestDigest, os: 'linux', architecture: 'arm64', variant: 'v8' },
    { digest: attestation.manifestDigest, os: 'unknown', architecture: 'unknown' },
  ]);
  await assert.rejects(
    c.resolve(parseReference(`${r.host}/app:armonly`)),
    isAppError('not_found', /has no linux\/amd64 image; it offers linux\/arm64\/v8$/),
  );
});

test('a single-platform image for another architecture is refused', async (t) => {
  const r = await registry(t);
  await r.pushImage('app', 'arm', { ...ONE_LAYER, architecture: 'arm64' });
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/app:arm`)),
    isAppError('bad_request', /is a linux\/arm64 image; banger needs linux\/amd64/),
  );
});

test('missing tag and missing repository are notFound naming registry, repository and status', async (t) => {
  const r = await registry(t);
  await r.pushImage('app', 'v1', ONE_LAYER);
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/app:v2`)),
    isAppError(
      'not_found',
      new RegExp(`registry ${r.host} has no manifest v2 in app \\(404 Not Found\\): MANIFEST_UNKNOWN`),
    ),
  );
  await assert.rejects(client().resolve(parseReference(`${r.host}/nope:v1`)), isAppError('not_found', /in nope \(404/));
});

test('schema 1 manifests and non-image artifacts are refused', async (t) => {
  const r = await registry(t);
  r.addManifest('old', 'v1', { schemaVersion: 1, name: 'old', tag: 'v1', fsLayers: [] }, OCI_MANIFEST);
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/old:v1`)),
    isAppError('bad_request', /obsolete Docker schema 1/),
  );
  const cfg = r.addBlob(Buffer.from('{}'));
  r.addManifest(
    'chart',
    'v1',
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: cfg, size: 2 },
      layers: [],
    },
    OCI_MANIFEST,
  );
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/chart:v1`)),
    isAppError('bad_request', /is not a container image: its config has media type/),
  );
});

test('a blob whose bytes do not match its digest fails the stream naming the digest', async (t) => {
  const r = await registry(t);
  const img = await r.pushImage('app', 'v1', ONE_LAYER);
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  r.corrupt.add(layer.digest);
  const ref = parseReference(`${r.host}/app:v1`);
  const s = await client().blob(ref, layer.digest);
  await assert.rejects(
    readAll(s),
    isAppError('operation_failed', new RegExp(`blob ${layer.digest} from ${r.host}/app failed verification`)),
  );

  r.corrupt.add(img.configDigest);
  await assert.rejects(
    client().resolve(ref),
    isAppError('operation_failed', new RegExp(`blob ${img.configDigest} .* failed verification`)),
  );
});

test('a blob larger than its descriptor is refused: at once when declared, after the descriptor size when streamed', async (t) => {
  const r = await registry(t);
  const img = await r.pushImage('app', 'v1', ONE_LAYER);
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  const ref = parseReference(`${r.host}/app:v1`);
  const size = layer.blob.length;
  r.padded.set(layer.digest, { extra: 4 * 1048576, declared: true });
  await assert.rejects(
    client().blob(ref, layer.digest, size),
    isAppError('operation_failed', new RegExp(`is ${size + 4 * 1048576} bytes but its descriptor says ${size}`)),
  );
  r.padded.set(layer.digest, { extra: 4 * 1048576, declared: false });
  const s = await client().blob(ref, layer.digest, size);
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const c of s) got += (c as Buffer).length;
    })(),
    isAppError('operation_failed', new RegExp(`larger than its descriptor's ${size} bytes`)),
  );
  assert.ok(got <= size, `read ${got} bytes past a ${size}-byte descriptor`);
  r.padded.delete(layer.digest);
  assert.deepEqual(await readAll(await client().blob(ref, layer.digest, size)), layer.blob);
});

test('blob: a malformed digest is a badRequest before any request', async (t) => {
  const r = await registry(t);
  await assert.rejects(
    client().blob(parseReference(`${r.host}/app:v1`), 'sha256:zz'),
    isAppError('bad_request', /invalid blob digest/),
  );
  assert.equal(r.requests().length, 0);
});

test('blob redirects are followed and Authorization is not sent to the other host', async (t) => {
  const r = await registry(t, { auth: 'bearer', redirectBlobs: true });
  const img = await r.pushImage('app', 'v1', ONE_LAYER);
  const ref = parseReference(`${r.host}/app:v1`);
  const c = client();
  await c.resolve(ref);
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  assert.deepEqual(await readAll(await c.blob(ref, layer.digest)), layer.blob);
  const storage = r.requests((q) => q.server === 'storage');
  assert.equal(storage.length, 2, 'config and layer came from storage');
  assert.ok(
    storage.every((q) => q.authorization === undefined),
    JSON.stringify(storage),
  );
  const blobReqs = r.requests((q) => q.server === 'registry' && q.path.includes('/blobs/'));
  assert.ok(blobReqs.every((q) => q.authorization?.startsWith('Bearer ') === true));
});

test('plain http to a non-loopback host is refused before it is contacted (token realm, redirect)', async (t) => {
  // 203.0.113.0/24 is TEST-NET-3: never contacted, because the check runs before fetch.
  const realm = await registry(t, { auth: 'bearer', realm: 'http://203.0.113.7/token' });
  await realm.pushImage('app', 'v1', ONE_LAYER);
  const rec = recordingFetch();
  await assert.rejects(client({ fetch: rec.fetch }).resolve(parseReference(`${realm.host}/app:v1`)), (e: unknown) => {
    isAppError('bad_request', /refusing plain http to 203\.0\.113\.7:80 \(token service for registry/)(e);
    assert.match((e as AppError).hint ?? '', /insecure_registries/);
    return true;
  });
  assert.ok(
    rec.urls.every((u) => !u.includes('203.0.113.7')),
    rec.urls.join(' '),
  );

  const redir = await registry(t, { redirectBlobs: 'http://203.0.113.7:8080' });
  const img = await redir.pushImage('app', 'v1', ONE_LAYER);
  const rec2 = recordingFetch();
  const layer = img.layers[0];
  assert.ok(layer !== undefined);
  await assert.rejects(
    client({ fetch: rec2.fetch }).blob(parseReference(`${redir.host}/app:v1`), layer.digest),
    isAppError('bad_request', /refusing plain http to 203\.0\.113\.7:8080/),
  );
  assert.ok(
    rec2.urls.every((u) => !u.includes('203.0.113.7')),
    rec2.urls.join(' '),
  );
  assert.equal(rec2.urls.length, 1);
});

test('scheme: https for other hosts, http only for loopback and insecureHosts', async (t) => {
  // Nothing here may touch the network: the stub answers, and the global fetch is disarmed meanwhile.
  const realFetch = globalThis.fetch;
  globalThis.fetch = () => Promise.reject(new Error('network access in a test'));
  t.after(() => {
    globalThis.fetch = realFetch;
  });
  const seen: string[] = [];
  const stub: typeof globalThis.fetch = (input) => {
    seen.push(input instanceof URL ? input.href : String(input));
    return Promise.resolve(
      new Response(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'x' }] }), {
        status: 404,
        statusText: 'Not Found',
      }),
    );
  };
  const c = client({ fetch: stub, insecureHosts: ['registry.lan:5000'] });
  const cases: [string, string][] = [
    ['registry.example.com/team/app:v1', 'https://registry.example.com/v2/team/app/manifests/v1'],
    ['registry.example.com:5000/app:v1', 'https://registry.example.com:5000/v2/app/manifests/v1'],
    ['registry.lan:5000/app:v1', 'http://registry.lan:5000/v2/app/manifests/v1'],
    ['registry.lan:5001/app:v1', 'https://registry.lan:5001/v2/app/manifests/v1'],
    ['localhost:5000/app:v1', 'http://localhost:5000/v2/app/manifests/v1'],
    ['127.0.0.2:5000/app:v1', 'http://127.0.0.2:5000/v2/app/manifests/v1'],
    ['[::1]:5000/app:v1', 'http://[::1]:5000/v2/app/manifests/v1'],
  ];
  for (const [ref, want] of cases) {
    seen.length = 0;
    await assert.rejects(c.resolve(parseReference(ref)), isAppError('not_found', /404/));
    assert.deepEqual(seen, [want], ref);
  }
});

test('an unreachable registry is operationFailed "cannot reach registry"', async () => {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  await assert.rejects(
    client().resolve(parseReference(`127.0.0.1:${port}/app:v1`)),
    isAppError('operation_failed', new RegExp(`^cannot reach registry 127\\.0\\.0\\.1:${port}: connection refused`)),
  );
});

test('an aborted signal cancels', async (t) => {
  const r = await registry(t);
  await r.pushImage('app', 'v1', ONE_LAYER);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    client({ signal: ac.signal }).resolve(parseReference(`${r.host}/app:v1`)),
    isAppError('cancelled', /cancelled/),
  );
});

test('config with a diff_ids count that does not match the layers is refused', async (t) => {
  const r = await registry(t);
  await r.pushImage('app', 'v1', { ...ONE_LAYER, diffIds: [] });
  await assert.rejects(
    client().resolve(parseReference(`${r.host}/app:v1`)),
    isAppError('operation_failed', /lists 0 diff_ids for 1 layers/),
  );
});
