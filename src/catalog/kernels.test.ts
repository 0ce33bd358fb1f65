import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DistroKernelEntry } from './embedded.js';
import { AppError } from '../errors.js';
import { mergeKernelCatalog, parseCatalogFile, validateKernelName, type TarballKernelEntry } from './kernels.js';

const SHA = 'a'.repeat(64);
const SRC = '/etc/banger/catalog.json';

const kernel = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'fc-6.1',
  distro: 'custom',
  version: '6.1.102',
  url: 'https://example.com/k/fc-6.1.tar.zst',
  sha256: SHA,
  ...extra,
});

const entry = (extra: Partial<TarballKernelEntry> = {}): TarballKernelEntry => ({
  kind: 'tarball',
  name: 'fc-6.1',
  distro: 'custom',
  version: '6.1.102',
  url: 'https://example.com/k/fc-6.1.tar.zst',
  sha256: SHA,
  ...extra,
});

function badRequestMatching(re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected AppError, got ${String(e)}`);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, re);
    assert.ok(e.message.startsWith(`${SRC}: `), `message names the source: ${e.message}`);
    assert.ok(e.hint !== undefined && e.hint !== '', 'has a hint');
    return true;
  };
}

const validCases: { name: string; doc: unknown; kernels: TarballKernelEntry[]; images?: unknown[] }[] = [
  { name: 'empty object', doc: {}, kernels: [] },
  { name: 'one kernel', doc: { kernels: [kernel()] }, kernels: [entry()] },
  { name: 'size kept', doc: { kernels: [kernel({ size: 12345 })] }, kernels: [entry({ size: 12345 })] },
  {
    name: 'tarball_url and tarball_sha256 aliases',
    doc: {
      kernels: [
        { name: 'k', distro: 'd', version: '1', tarball_url: 'http://127.0.0.1:8080/k.tar.zst', tarball_sha256: SHA },
      ],
    },
    kernels: [
      { kind: 'tarball', name: 'k', distro: 'd', version: '1', url: 'http://127.0.0.1:8080/k.tar.zst', sha256: SHA },
    ],
  },
  {
    name: 'uppercase sha lowercased',
    doc: { kernels: [kernel({ sha256: 'AB'.repeat(32) })] },
    kernels: [entry({ sha256: 'ab'.repeat(32) })],
  },
  {
    name: 'file url',
    doc: { kernels: [kernel({ url: 'file:///srv/k.tar.zst' })] },
    kernels: [entry({ url: 'file:///srv/k.tar.zst' })],
  },
  { name: 'images kept raw', doc: { images: [{ anything: 1 }, 'x'] }, kernels: [], images: [{ anything: 1 }, 'x'] },
];

for (const c of validCases) {
  test(`parseCatalogFile accepts: ${c.name}`, () => {
    const got = parseCatalogFile(JSON.stringify(c.doc), SRC);
    assert.deepEqual(got.kernels, c.kernels);
    assert.deepEqual(got.images, c.images ?? []);
  });
}

const invalidCases: { name: string; text: string; re: RegExp }[] = [
  { name: 'not JSON', text: '{"kernels": [', re: /not valid JSON/ },
  { name: 'array at top', text: '[]', re: /must be a JSON object/ },
  { name: 'unknown top-level key', text: JSON.stringify({ kernel: [] }), re: /unknown key kernel$/ },
  {
    name: 'unknown kernel key names its path',
    text: JSON.stringify({ kernels: [kernel(), kernel({ name: 'b', sha: 'x' })] }),
    re: /unknown key kernels\[1\]\.sha$/,
  },
  { name: 'kernels not an array', text: JSON.stringify({ kernels: {} }), re: /kernels must be an array/ },
  { name: 'images not an array', text: JSON.stringify({ images: 3 }), re: /images must be an array/ },
  { name: 'entry not an object', text: JSON.stringify({ kernels: ['x'] }), re: /kernels\[0\] must be an object/ },
  {
    name: 'missing sha',
    text: JSON.stringify({ kernels: [kernel({ sha256: undefined })] }),
    re: /kernels\[0\]\.sha256 is required/,
  },
  {
    name: 'missing url',
    text: JSON.stringify({ kernels: [kernel({ url: undefined })] }),
    re: /kernels\[0\]\.url is required/,
  },
  {
    name: 'missing version',
    text: JSON.stringify({ kernels: [kernel({ version: undefined })] }),
    re: /kernels\[0\]\.version is required/,
  },
  {
    name: 'short sha',
    text: JSON.stringify({ kernels: [kernel({ sha256: 'abc' })] }),
    re: /kernels\[0\]\.sha256 must be 64 hex digits/,
  },
  {
    name: 'non-hex sha',
    text: JSON.stringify({ kernels: [kernel({ sha256: 'g'.repeat(64) })] }),
    re: /sha256 must be 64 hex digits/,
  },
  {
    name: 'bad sha via alias',
    text: JSON.stringify({ kernels: [kernel({ sha256: undefined, tarball_sha256: 'z' })] }),
    re: /kernels\[0\]\.tarball_sha256 must be 64 hex/,
  },
  {
    name: 'both url and tarball_url',
    text: JSON.stringify({ kernels: [kernel({ tarball_url: 'https://x/y' })] }),
    re: /both url and tarball_url/,
  },
  {
    name: 'bad name character',
    text: JSON.stringify({ kernels: [kernel({ name: 'my kernel' })] }),
    re: /kernels\[0\]\.name: .*" " at position 3/,
  },
  {
    name: 'name ..',
    text: JSON.stringify({ kernels: [kernel({ name: '..' })] }),
    re: /kernels\[0\]\.name: invalid kernel name/,
  },
  {
    name: 'name not a string',
    text: JSON.stringify({ kernels: [kernel({ name: 7 })] }),
    re: /kernels\[0\]\.name must be a non-empty string/,
  },
  {
    name: 'relative url',
    text: JSON.stringify({ kernels: [kernel({ url: 'k.tar.zst' })] }),
    re: /kernels\[0\]\.url must be an absolute/,
  },
  {
    name: 'ftp url',
    text: JSON.stringify({ kernels: [kernel({ url: 'ftp://x/k.tar.zst' })] }),
    re: /kernels\[0\]\.url must be an absolute/,
  },
  {
    name: 'negative size',
    text: JSON.stringify({ kernels: [kernel({ size: -1 })] }),
    re: /kernels\[0\]\.size must be a whole number/,
  },
  {
    name: 'string size',
    text: JSON.stringify({ kernels: [kernel({ size: '10' })] }),
    re: /kernels\[0\]\.size must be a whole number/,
  },
  {
    name: 'duplicate names',
    text: JSON.stringify({ kernels: [kernel(), kernel()] }),
    re: /kernels\[1\]\.name: kernel "fc-6\.1" is listed twice/,
  },
  {
    name: 'control char in distro',
    text: JSON.stringify({ kernels: [kernel({ distro: 'a\nb' })] }),
    re: /kernels\[0\]\.distro must not contain control/,
  },
];

for (const c of invalidCases) {
  test(`parseCatalogFile rejects: ${c.name}`, () => {
    assert.throws(() => parseCatalogFile(c.text, SRC), badRequestMatching(c.re));
  });
}

const nameCases: { name: string; ok: boolean; re?: RegExp }[] = [
  { name: 'debian-bookworm-cloud', ok: true },
  { name: 'fc_6.1.102', ok: true },
  { name: 'a', ok: true },
  { name: 'x'.repeat(64), ok: true },
  { name: 'x'.repeat(65), ok: false, re: /65 characters, at most 64/ },
  { name: '', ok: false, re: /must not be empty/ },
  { name: 'a/b', ok: false, re: /character "\/" at position 2/ },
  { name: 'ab c', ok: false, re: /character " " at position 3/ },
  { name: 'kernel\u00e9', ok: false, re: /character "\u00e9" at position 7/ },
  { name: '.', ok: false, re: /invalid kernel name/ },
  { name: '..', ok: false, re: /invalid kernel name/ },
];

for (const c of nameCases) {
  test(`validateKernelName(${JSON.stringify(c.name.length > 20 ? `${c.name.slice(0, 8)}…(${c.name.length})` : c.name)})`, () => {
    if (c.ok) {
      validateKernelName(c.name);
      return;
    }
    assert.throws(
      () => validateKernelName(c.name),
      (e: unknown) =>
        e instanceof AppError && e.code === 'bad_request' && (c.re?.test(e.message) ?? false) && e.hint !== undefined,
    );
  });
}

test('mergeKernelCatalog: file entries win on name clashes, result sorted by name', () => {
  const embedded: DistroKernelEntry[] = [
    { kind: 'distro', name: 'debian-bookworm-cloud', distro: 'debian', package: 'linux-image-cloud-amd64' },
    { kind: 'distro', name: 'zz-distro', distro: 'debian', package: 'linux-image-amd64' },
  ];
  const file = [entry({ name: 'zz-distro' }), entry({ name: 'alpha' }), entry({ name: 'm-kernel' })];
  const merged = mergeKernelCatalog(embedded, file);
  assert.deepEqual(
    merged.map((e) => [e.name, e.kind]),
    [
      ['alpha', 'tarball'],
      ['debian-bookworm-cloud', 'distro'],
      ['m-kernel', 'tarball'],
      ['zz-distro', 'tarball'],
    ],
  );
  assert.deepEqual(merged[3], entry({ name: 'zz-distro' }));
});

test('mergeKernelCatalog with an empty file keeps the embedded catalog', () => {
  const embedded: DistroKernelEntry[] = [
    { kind: 'distro', name: 'b', distro: 'debian', package: 'p' },
    { kind: 'distro', name: 'a', distro: 'debian', package: 'q' },
  ];
  assert.deepEqual(
    mergeKernelCatalog(embedded, []).map((e) => e.name),
    ['a', 'b'],
  );
});
