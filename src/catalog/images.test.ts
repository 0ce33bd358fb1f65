import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCatalogImages } from './images.js';

const sha = 'a'.repeat(64);

test('catalog image entries', () => {
  assert.deepEqual(
    parseCatalogImages(
      [{ name: 'team-dev', tarball_url: 'https://x/y.tar.zst', tarball_sha256: sha.toUpperCase(), kernel_ref: 'k' }],
      'cat.json',
    ),
    [{ name: 'team-dev', distro: 'unknown', url: 'https://x/y.tar.zst', sha256: sha, kernelRef: 'k' }],
  );
  const bad: [unknown, RegExp][] = [
    [{ name: 'x', tarball_url: 'https://x', tarball_sha256: sha, extra: 1 }, /images\[0\]: unknown key "extra"/],
    [{ name: 'x', tarball_url: 'ftp://x', tarball_sha256: sha }, /images\[0\]\.tarball_url/],
    [{ name: 'x', tarball_url: 'https://x', tarball_sha256: 'abc' }, /images\[0\]\.tarball_sha256/],
    [{ name: 'Bad', tarball_url: 'https://x', tarball_sha256: sha }, /images\[0\]\.name/],
  ];
  for (const [e, re] of bad) assert.throws(() => parseCatalogImages([e], 'cat.json'), re);
});
