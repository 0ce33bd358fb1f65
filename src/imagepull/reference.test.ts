import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import { deriveImageName, formatReference, isCatalogWord, parseReference, type ImageRef } from './reference.js';

const D = `sha256:${'ab12'.repeat(16)}`;

const good: [string, ImageRef][] = [
  ['alpine', { registry: 'registry-1.docker.io', repository: 'library/alpine', tag: 'latest' }],
  ['alpine:3.20', { registry: 'registry-1.docker.io', repository: 'library/alpine', tag: '3.20' }],
  ['library/alpine:3.20', { registry: 'registry-1.docker.io', repository: 'library/alpine', tag: '3.20' }],
  [
    'docker.io/library/debian:bookworm',
    { registry: 'registry-1.docker.io', repository: 'library/debian', tag: 'bookworm' },
  ],
  ['docker.io/debian', { registry: 'registry-1.docker.io', repository: 'library/debian', tag: 'latest' }],
  ['index.docker.io/user/app:v1', { registry: 'registry-1.docker.io', repository: 'user/app', tag: 'v1' }],
  ['user/app', { registry: 'registry-1.docker.io', repository: 'user/app', tag: 'latest' }],
  [`host:5000/a/b@${D}`, { registry: 'host:5000', repository: 'a/b', digest: D }],
  [`host:5000/a/b:v2@${D}`, { registry: 'host:5000', repository: 'a/b', tag: 'v2', digest: D }],
  ['localhost/x', { registry: 'localhost', repository: 'x', tag: 'latest' }],
  ['localhost:5000/x', { registry: 'localhost:5000', repository: 'x', tag: 'latest' }],
  ['127.0.0.1:5000/x:tag', { registry: '127.0.0.1:5000', repository: 'x', tag: 'tag' }],
  ['[::1]:5000/x:tag', { registry: '[::1]:5000', repository: 'x', tag: 'tag' }],
  ['ghcr.io/org/sub/img:1.0_rc-2', { registry: 'ghcr.io', repository: 'org/sub/img', tag: '1.0_rc-2' }],
  ['Registry.Example.COM/a__b/c-d.e:Tag', { registry: 'registry.example.com', repository: 'a__b/c-d.e', tag: 'Tag' }],
  ['quay.io/a/b', { registry: 'quay.io', repository: 'a/b', tag: 'latest' }],
];

for (const [input, want] of good) {
  test(`parseReference(${JSON.stringify(input)})`, () => {
    assert.deepEqual(parseReference(input), want);
  });
}

const bad: [string, RegExp][] = [
  ['', /empty/],
  ['Alpine', /lowercase/],
  ['user/App:v1', /lowercase/],
  ['alpine:', /empty tag/],
  ['alpine:-x', /tag "-x" is invalid/],
  [`alpine:${'a'.repeat(129)}`, /is invalid/],
  ['alpine@sha256:abc', /64 lowercase hex/],
  [`alpine@sha512:${'a'.repeat(128)}`, /unsupported digest algorithm "sha512"/],
  ['alpine@abc', /no algorithm/],
  [`alpine@${D}@${D}`, /more than one '@'/],
  ['a//b', /empty path component/],
  ['/a', /empty path component/],
  ['host:5000/', /empty path component|no repository/],
  ['https://host/x', /URL scheme/],
  ['a b', /whitespace/],
  ['host:99999/x', /not a valid host/],
  ['bad_host.com/x', /not a valid host/],
  ['a/-b', /component "-b" is invalid/],
  ['a/b..c', /component "b..c" is invalid/],
  [':tag', /no repository/],
];

for (const [input, message] of bad) {
  test(`parseReference(${JSON.stringify(input)}) is a badRequest`, () => {
    assert.throws(
      () => parseReference(input),
      (e: unknown) => {
        assert.ok(e instanceof AppError);
        assert.equal(e.code, 'bad_request');
        assert.match(e.message, message);
        assert.match(e.message, /invalid image reference/);
        assert.ok(e.hint !== undefined);
        return true;
      },
    );
  });
}

const NAME = /^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$/;

const names: [string, string][] = [
  ['docker.io/library/debian:bookworm', 'debian-bookworm'],
  ['alpine', 'alpine-latest'],
  ['127.0.0.1:5000/team/app:v1.2', 'app-v1.2'],
  [`127.0.0.1:5000/team/app@${D}`, `app-${'ab12'.repeat(3)}`],
  [`127.0.0.1:5000/team/app:v1@${D}`, 'app-v1'],
  ['ghcr.io/o/my__odd.name:Release_CANDIDATE', 'my__odd.name-release_candidate'],
  ['x/y:_tag_', 'y-tag'],
];

for (const [input, want] of names) {
  test(`deriveImageName(${JSON.stringify(input)}) = ${want}`, () => {
    const got = deriveImageName(parseReference(input));
    assert.equal(got, want);
    assert.match(got, NAME);
  });
}

test('deriveImageName keeps long names within 63 characters, tag intact', () => {
  const long = `${'a'.repeat(120)}`;
  const got = deriveImageName(parseReference(`host:5000/${long}:v1`));
  assert.ok(got.length <= 63, got);
  assert.match(got, NAME);
  assert.ok(got.endsWith('-v1'));
  const longTag = deriveImageName(parseReference(`host:5000/app:${'T'.repeat(128)}`));
  assert.ok(longTag.length <= 63);
  assert.match(longTag, NAME);
  assert.ok(longTag.startsWith('app-t'));
});

test('deriveImageName sanitises hand-built refs', () => {
  const got = deriveImageName({ registry: 'h', repository: 'a/..Weird Name..', tag: '--X--' });
  assert.match(got, NAME);
  assert.equal(got, 'weird-name-x');
});

test('formatReference writes Docker Hub as docker.io', () => {
  assert.equal(formatReference(parseReference('alpine')), 'docker.io/library/alpine:latest');
  assert.equal(formatReference(parseReference(`h:1/a@${D}`)), `h:1/a@${D}`);
});

const words: [string, boolean][] = [
  ['debian-bookworm', true],
  ['alpine', true],
  ['alpine:3.20', false],
  ['library/alpine', false],
  [`alpine@${D}`, false],
  ['localhost:5000', false],
  ['', false],
];

for (const [input, want] of words) {
  test(`isCatalogWord(${JSON.stringify(input)}) = ${want}`, () => {
    assert.equal(isCatalogWord(input), want);
  });
}
