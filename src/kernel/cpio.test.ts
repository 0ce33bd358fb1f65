import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AppError } from '../errors.js';
import { cpioNewc, parseCpioNewc, type CpioEntry } from './cpio.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../../../test/fixtures/cpio/${name}`, import.meta.url));

/** Reads header field i (0 = ino … 12 = check) of the entry starting at off. */
function headerField(buf: Buffer, off: number, i: number): number {
  return parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
}

const sample: CpioEntry[] = [
  { type: 'dir', path: 'dev', mode: 0o755 },
  { type: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { type: 'file', path: 'init', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'file', path: 'empty', mode: 0o644, data: Buffer.alloc(0) },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'file', path: 'bin/busybox', mode: 0o4755, data: Buffer.alloc(1001, 7) },
];

test('cpioNewc round-trips through parseCpioNewc', () => {
  assert.deepEqual(parseCpioNewc(cpioNewc(sample)), [
    { path: 'dev', mode: 0o040755, size: 0 },
    { path: 'dev/console', mode: 0o020600, size: 0, major: 5, minor: 1 },
    { path: 'init', mode: 0o100755, size: 18 },
    { path: 'empty', mode: 0o100644, size: 0 },
    { path: 'bin/sh', mode: 0o120777, size: 7, target: 'busybox' },
    { path: 'bin/busybox', mode: 0o104755, size: 1001 },
  ]);
});

test('cpioNewc header fields, alignment and trailer', () => {
  const buf = cpioNewc(sample);
  assert.equal(buf.length % 4, 0);
  let off = 0;
  const seen: { name: string; ino: number; nlink: number; mtime: number; uid: number; gid: number }[] = [];
  for (;;) {
    assert.equal(off % 4, 0, 'entries start 4-aligned');
    assert.equal(buf.toString('ascii', off, off + 6), '070701');
    const namesize = headerField(buf, off, 11);
    const filesize = headerField(buf, off, 6);
    const name = buf.toString('utf8', off + 110, off + 110 + namesize - 1);
    assert.equal(buf[off + 110 + namesize - 1], 0, 'name NUL-terminated');
    seen.push({
      name,
      ino: headerField(buf, off, 0),
      nlink: headerField(buf, off, 4),
      mtime: headerField(buf, off, 5),
      uid: headerField(buf, off, 2),
      gid: headerField(buf, off, 3),
    });
    let dataStart = off + 110 + namesize;
    dataStart += (4 - (dataStart % 4)) % 4;
    if (name === 'init') assert.equal(buf.toString('utf8', dataStart, dataStart + filesize), '#!/bin/sh\necho hi\n');
    if (name === 'bin/sh') assert.equal(buf.toString('utf8', dataStart, dataStart + filesize), 'busybox');
    off = dataStart + filesize + ((4 - (filesize % 4)) % 4);
    if (name === 'TRAILER!!!') break;
  }
  assert.equal(off, buf.length, 'nothing after the trailer');
  assert.deepEqual(
    seen.map((s) => [s.name, s.ino, s.nlink]),
    [
      ['dev', 1, 2],
      ['dev/console', 2, 1],
      ['init', 3, 1],
      ['empty', 4, 1],
      ['bin/sh', 5, 1],
      ['bin/busybox', 6, 1],
      ['TRAILER!!!', 0, 1],
    ],
  );
  assert.ok(seen.every((s) => s.mtime === 0 && s.uid === 0 && s.gid === 0));
});

test('cpioNewc is deterministic', () => {
  assert.deepEqual(cpioNewc(sample), cpioNewc(sample));
});

test('cpioNewc of no entries is just the trailer', () => {
  const buf = cpioNewc([]);
  assert.deepEqual(parseCpioNewc(buf), []);
  assert.equal(buf.length, 124); // 110 + 'TRAILER!!!\0' (11) padded to 4
});

test('cpioNewc uses only permission bits of mode', () => {
  const [e] = parseCpioNewc(cpioNewc([{ type: 'file', path: 'x', mode: 0o170644, data: Buffer.from('a') }]));
  assert.equal(e?.mode, 0o100644);
});

const badPaths: { name: string; path: string }[] = [
  { name: 'absolute', path: '/init' },
  { name: 'dotdot at start', path: '../x' },
  { name: 'dotdot inside', path: 'a/../../x' },
  { name: 'bare dotdot', path: '..' },
  { name: 'empty', path: '' },
  { name: 'NUL', path: 'a\0b' },
  { name: 'trailer name', path: 'TRAILER!!!' },
];
for (const c of badPaths) {
  test(`cpioNewc rejects ${c.name} path`, () => {
    assert.throws(
      () => cpioNewc([{ type: 'dir', path: c.path, mode: 0o755 }]),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request',
    );
  });
}

test('cpioNewc accepts names that merely contain dots', () => {
  const paths = ['.', 'a/..b', '...', 'x/.hidden'];
  const out = parseCpioNewc(cpioNewc(paths.map((path) => ({ type: 'dir' as const, path, mode: 0o755 }))));
  assert.deepEqual(
    out.map((e) => e.path),
    paths,
  );
});

const fixtureCases: { file: string; want: ReturnType<typeof parseCpioNewc> }[] = [
  {
    // Produced by: find . | sort | cpio -o -H newc --reproducible (GNU cpio 2.13)
    file: 'find-newc.cpio',
    want: [
      { path: '.', mode: 0o040755, size: 0 },
      { path: 'console', mode: 0o020600, size: 0, major: 5, minor: 1 },
      { path: 'hello.txt', mode: 0o100644, size: 6 },
      { path: 'sub', mode: 0o040755, size: 0 },
      { path: 'sub/link', mode: 0o120777, size: 12, target: '../hello.txt' },
    ],
  },
];
for (const c of fixtureCases) {
  test(`parseCpioNewc reads real cpio output ${c.file}`, () => {
    assert.deepEqual(parseCpioNewc(fixture(c.file)), c.want);
  });
}

test('cpioNewc produces the same layout as GNU cpio apart from ino, nlink and mtime', () => {
  const real = fixture('find-newc.cpio');
  const mine = cpioNewc([
    { type: 'dir', path: '.', mode: 0o755 },
    { type: 'chardev', path: 'console', mode: 0o600, major: 5, minor: 1 },
    { type: 'file', path: 'hello.txt', mode: 0o644, data: Buffer.from('hello\n') },
    { type: 'dir', path: 'sub', mode: 0o755 },
    { type: 'symlink', path: 'sub/link', target: '../hello.txt' },
  ]);
  assert.ok(real.length >= mine.length);
  // GNU cpio pads the archive to 512-byte blocks with NULs after the trailer.
  assert.ok(real.subarray(mine.length).every((b) => b === 0));
  const ignored = new Set([0, 4, 5]); // ino, nlink, mtime
  let off = 0;
  while (off < mine.length) {
    for (let i = 0; i < 13; i++) {
      if (!ignored.has(i)) assert.equal(headerField(mine, off, i), headerField(real, off, i), `field ${i} at ${off}`);
    }
    const namesize = headerField(mine, off, 11);
    const filesize = headerField(mine, off, 6);
    let dataStart = off + 110 + namesize;
    dataStart += (4 - (dataStart % 4)) % 4;
    const end = dataStart + filesize + ((4 - (filesize % 4)) % 4);
    assert.deepEqual(mine.subarray(off + 110, end), real.subarray(off + 110, end));
    off = end;
  }
});

const corruptCases: { name: string; buf: Buffer }[] = [
  { name: 'empty buffer', buf: Buffer.alloc(0) },
  { name: 'bad magic', buf: Buffer.from('070707' + '0'.repeat(200)) },
  { name: 'missing trailer', buf: cpioNewc([{ type: 'dir', path: 'a', mode: 0o755 }]).subarray(0, 112) },
  { name: 'non-hex field', buf: Buffer.concat([Buffer.from('070701zzzzzzzz'), Buffer.alloc(200, 0x30)]) },
  {
    name: 'truncated data',
    buf: cpioNewc([{ type: 'file', path: 'f', mode: 0o644, data: Buffer.alloc(100) }]).subarray(0, 150),
  },
];
for (const c of corruptCases) {
  test(`parseCpioNewc rejects ${c.name}`, () => {
    assert.throws(
      () => parseCpioNewc(c.buf),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request',
    );
  });
}
