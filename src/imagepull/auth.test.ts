import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import {
  basicAuthorization,
  bearerAuthorization,
  credentialHelperFor,
  credentialsFor,
  normalizeAuthKey,
  parseTokenResponse,
  parseWwwAuthenticate,
  pickChallenge,
  tokenUrl,
  type Challenge,
} from './auth.js';

const challenges: [string, Challenge[]][] = [
  [
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
    [
      {
        scheme: 'bearer',
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/alpine:pull',
      },
    ],
  ],
  [
    'Bearer realm="https://ghcr.io/token",service="ghcr.io"',
    [{ scheme: 'bearer', realm: 'https://ghcr.io/token', service: 'ghcr.io' }],
  ],
  ['bearer REALM="https://x/t" , Service=svc', [{ scheme: 'bearer', realm: 'https://x/t', service: 'svc' }]],
  ['Basic realm="Registry Realm"', [{ scheme: 'basic', realm: 'Registry Realm' }]],
  ['Basic', [{ scheme: 'basic' }]],
  [
    'Basic realm="a, b", Bearer realm="https://t/x",scope="repository:a:pull,push"',
    [
      { scheme: 'basic', realm: 'a, b' },
      { scheme: 'bearer', realm: 'https://t/x', scope: 'repository:a:pull,push' },
    ],
  ],
  ['Bearer realm="quoted \\"inner\\" text"', [{ scheme: 'bearer', realm: 'quoted "inner" text' }]],
  ['Negotiate, Bearer service="no-realm"', []],
  ['', []],
];

for (const [header, want] of challenges) {
  test(`parseWwwAuthenticate(${JSON.stringify(header)})`, () => {
    assert.deepEqual(parseWwwAuthenticate(header), want);
  });
}

test('pickChallenge prefers Bearer over Basic', () => {
  const both = parseWwwAuthenticate('Basic realm="r", Bearer realm="https://t/"');
  assert.equal(pickChallenge(both)?.scheme, 'bearer');
  assert.equal(pickChallenge(parseWwwAuthenticate('Basic realm="r"'))?.scheme, 'basic');
  assert.equal(pickChallenge([]), undefined);
});

test('tokenUrl adds service and a pull scope for the repository, keeping realm query', () => {
  const u = tokenUrl(
    { scheme: 'bearer', realm: 'https://auth.example/token?x=1', service: 'reg', scope: 'repository:other:push' },
    'team/app',
  );
  assert.equal(u.origin + u.pathname, 'https://auth.example/token');
  assert.equal(u.searchParams.get('x'), '1');
  assert.equal(u.searchParams.get('service'), 'reg');
  assert.equal(u.searchParams.get('scope'), 'repository:team/app:pull');
  const noService = tokenUrl({ scheme: 'bearer', realm: 'https://a/t' }, 'r');
  assert.equal(noService.searchParams.has('service'), false);
  assert.throws(
    () => tokenUrl({ scheme: 'bearer', realm: 'not a url' }, 'r'),
    (e: unknown) => e instanceof AppError && e.code === 'bad_request',
  );
});

const tokens: [unknown, ReturnType<typeof parseTokenResponse>][] = [
  [
    { token: 't1', expires_in: 300 },
    { token: 't1', expiresIn: 300 },
  ],
  [{ access_token: 't2' }, { token: 't2' }],
  [{ token: '', access_token: 't3' }, { token: 't3' }],
  [{ nothing: true }, undefined],
  ['text', undefined],
  [null, undefined],
];

for (const [body, want] of tokens) {
  test(`parseTokenResponse(${JSON.stringify(body)})`, () => {
    assert.deepEqual(parseTokenResponse(body), want);
  });
}

test('Authorization header values', () => {
  assert.equal(
    basicAuthorization({ username: 'u', password: 'p:w' }),
    `Basic ${Buffer.from('u:p:w').toString('base64')}`,
  );
  assert.equal(bearerAuthorization('abc'), 'Bearer abc');
});

const b64 = (s: string): string => Buffer.from(s).toString('base64');

const creds: [string, string, string, { username: string; password: string } | undefined][] = [
  [
    'auth field',
    JSON.stringify({ auths: { 'host:5000': { auth: b64('alice:s3cr:et') } } }),
    'host:5000',
    { username: 'alice', password: 's3cr:et' },
  ],
  [
    'username/password fields',
    JSON.stringify({ auths: { 'host:5000': { username: 'bob', password: 'pw' } } }),
    'host:5000',
    { username: 'bob', password: 'pw' },
  ],
  [
    'docker hub v1 key',
    JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } }),
    'registry-1.docker.io',
    { username: 'hub', password: 'pw' },
  ],
  [
    'docker hub docker.io key',
    JSON.stringify({ auths: { 'docker.io': { auth: b64('hub2:pw') } } }),
    'registry-1.docker.io',
    { username: 'hub2', password: 'pw' },
  ],
  [
    'scheme and path on key',
    JSON.stringify({ auths: { 'https://Host:5000/v2/': { auth: b64('c:d') } } }),
    'host:5000',
    { username: 'c', password: 'd' },
  ],
  [
    'other port does not match',
    JSON.stringify({ auths: { 'host:5001': { auth: b64('c:d') } } }),
    'host:5000',
    undefined,
  ],
  [
    'hub key not used for others',
    JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('c:d') } } }),
    'ghcr.io',
    undefined,
  ],
  [
    'empty entry (credsStore)',
    JSON.stringify({ auths: { 'ghcr.io': {} }, credsStore: 'desktop' }),
    'ghcr.io',
    undefined,
  ],
  ['no auths', '{}', 'ghcr.io', undefined],
  [
    'exact key wins',
    JSON.stringify({ auths: { 'https://h:1/v1/': { auth: b64('a:1') }, 'h:1': { auth: b64('b:2') } } }),
    'h:1',
    { username: 'b', password: '2' },
  ],
  [
    'auth without colon falls through to fields',
    JSON.stringify({ auths: { h: { auth: b64('nocolon'), username: 'u', password: 'p' } } }),
    'h',
    { username: 'u', password: 'p' },
  ],
];

for (const [name, config, registry, want] of creds) {
  test(`credentialsFor: ${name}`, () => {
    assert.deepEqual(credentialsFor(config, registry), want);
  });
}

test('credentialsFor: invalid JSON is a badRequest', () => {
  assert.throws(
    () => credentialsFor('{nope', 'h'),
    (e: unknown) => e instanceof AppError && e.code === 'bad_request' && /config\.json/.test(e.message),
  );
  assert.throws(
    () => credentialsFor('[]', 'h'),
    (e: unknown) => e instanceof AppError && e.code === 'bad_request',
  );
});

test('credentialHelperFor: credHelpers entry, else credsStore', () => {
  const cfg = JSON.stringify({ credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud' } });
  assert.equal(credentialHelperFor(cfg, 'gcr.io'), 'gcloud');
  assert.equal(credentialHelperFor(cfg, 'ghcr.io'), 'desktop');
  assert.equal(credentialHelperFor('{}', 'ghcr.io'), undefined);
  assert.equal(credentialHelperFor('{bad', 'ghcr.io'), undefined);
});

test('normalizeAuthKey', () => {
  assert.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'index.docker.io');
  assert.equal(normalizeAuthKey('HOST:5000'), 'host:5000');
  assert.equal(normalizeAuthKey('http://h:1/path'), 'h:1');
});
