import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import { formatSize, parseDuration, parseSize } from './sizes.js';

const K = 1024;
const M = K * K;
const G = K * M;
const T = K * G;

const isBadRequest = (e: unknown): boolean => e instanceof AppError && e.code === 'bad_request';

const sizeOk: { input: string | number; want: number }[] = [
  { input: '8G', want: 8 * G },
  { input: '8g', want: 8 * G },
  { input: '8GiB', want: 8 * G },
  { input: '8gib', want: 8 * G },
  { input: '8 G', want: 8 * G },
  { input: '512M', want: 512 * M },
  { input: '512MiB', want: 512 * M },
  { input: '64K', want: 64 * K },
  { input: '64KiB', want: 64 * K },
  { input: '1T', want: T },
  { input: '2TiB', want: 2 * T },
  { input: '1.5G', want: 1.5 * G },
  { input: '.5G', want: 512 * M },
  { input: '4096B', want: 4096 },
  { input: '2048', want: 2048 * M },
  { input: ' 2048 ', want: 2048 * M },
  { input: 2048, want: 2048 * M },
  { input: 0.5, want: 512 * K },
];
for (const c of sizeOk) {
  test(`parseSize(${JSON.stringify(c.input)})`, () => assert.equal(parseSize(c.input, 'disk_size'), c.want));
}

const sizeBad: (string | number)[] = [
  '1Q',
  '',
  'G',
  '-1G',
  '0',
  '0G',
  0,
  -5,
  NaN,
  Infinity,
  '8GB',
  '8 MB',
  '1e3',
  '8  G',
  'eight',
  '0.1B',
  '1.1G',
  '9999999999T',
];
for (const input of sizeBad) {
  test(`parseSize rejects ${JSON.stringify(String(input))}`, () => {
    assert.throws(
      () => parseSize(input, 'vm_defaults.disk_size'),
      (e: unknown) => isBadRequest(e) && (e as AppError).message.includes('vm_defaults.disk_size'),
    );
  });
}

test('parseSize error wording', () => {
  assert.throws(
    () => parseSize('1Q', 'disk_size'),
    (e: unknown) =>
      isBadRequest(e) &&
      (e as AppError).message === 'invalid size for disk_size: "1Q"' &&
      (e as AppError).hint === 'use a number with K, M or G (binary units), e.g. 8G; a bare number means MiB',
  );
});

const formatCases: { bytes: number; want: string }[] = [
  { bytes: 8 * G, want: '8G' },
  { bytes: 512 * M, want: '512M' },
  { bytes: 1.5 * G, want: '1.5G' },
  { bytes: 1.25 * G, want: '1.25G' },
  { bytes: 1536 * M + M, want: '1537M' },
  { bytes: 2 * T, want: '2T' },
  { bytes: 64 * K, want: '64K' },
  { bytes: 1000, want: '1000B' },
  { bytes: 8 * G + 1, want: '8589934593B' },
];
for (const c of formatCases) {
  test(`formatSize(${c.bytes}) = ${c.want} and round-trips`, () => {
    assert.equal(formatSize(c.bytes), c.want);
    assert.equal(parseSize(formatSize(c.bytes), 'x'), c.bytes);
  });
}

const durationOk: { input: string; want: number }[] = [
  { input: '0', want: 0 },
  { input: '0s', want: 0 },
  { input: '90s', want: 90_000 },
  { input: '5m', want: 300_000 },
  { input: '1h', want: 3_600_000 },
  { input: '1h30m', want: 5_400_000 },
  { input: '1h30m15s', want: 5_415_000 },
  { input: '2m500ms', want: 120_500 },
  { input: '250ms', want: 250 },
  { input: '1.5h', want: 5_400_000 },
  { input: '0.3s', want: 300 },
  { input: ' 90s ', want: 90_000 },
];
for (const c of durationOk) {
  test(`parseDuration(${JSON.stringify(c.input)})`, () =>
    assert.equal(parseDuration(c.input, 'ssh_wait_timeout'), c.want));
}

const durationBad = ['', '90', 'abc', '5x', '-5s', '1d', '30m1h', '1h1h', '1 h', '1.5ms5', '0.5ms', 's', '1h 30m'];
for (const input of durationBad) {
  test(`parseDuration rejects ${JSON.stringify(input)}`, () => {
    assert.throws(
      () => parseDuration(input, 'auto_stop_stale_after'),
      (e: unknown) => isBadRequest(e) && (e as AppError).message.includes('auto_stop_stale_after'),
    );
  });
}
