import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntryMeta } from './flatten.js';
import { resolveImagePath } from './image-path.js';

const D: EntryMeta = { uid: 0, gid: 0, mode: 0o755, type: 'dir' };
const F: EntryMeta = { uid: 0, gid: 0, mode: 0o644, type: 'file' };
const L: EntryMeta = { uid: 0, gid: 0, mode: 0o777, type: 'symlink' };

/** A usrmerge-style tree with hostile links. */
const links: Record<string, string> = {
  lib: 'usr/lib',
  sbin: '/usr/sbin',
  'etc/os-release': '../usr/lib/os-release',
  'etc/abs': '/usr/lib/os-release',
  'etc/up': '../../../../usr/lib/os-release',
  'etc/zero': '/dev/zero',
  'etc/loop1': 'loop2',
  'etc/loop2': 'loop1',
  'etc/dirlink': '/usr',
  'etc/hostdir': '/var/../..',
};
const meta = new Map<string, EntryMeta>([
  ['usr', D],
  ['usr/lib', D],
  ['usr/lib/os-release', F],
  ['usr/sbin', D],
  ['usr/sbin/sshd', F],
  ['usr/lib/systemd', D],
  ['usr/lib/systemd/systemd', F],
  ['etc', D],
  ['var', D],
  ...Object.keys(links).map((k): [string, EntryMeta] => [k, L]),
]);
const readlink = (rel: string): string => {
  const t = links[rel];
  if (t === undefined) throw new Error(`readlink of a non-link ${rel}`);
  return t;
};

const cases: { path: string; want: string | undefined }[] = [
  { path: 'usr/lib/os-release', want: 'usr/lib/os-release' },
  { path: 'etc/os-release', want: 'usr/lib/os-release' },
  { path: '/etc/os-release', want: 'usr/lib/os-release' },
  { path: 'etc/abs', want: 'usr/lib/os-release' },
  { path: 'etc/up', want: 'usr/lib/os-release' },
  { path: 'lib/systemd/systemd', want: 'usr/lib/systemd/systemd' },
  { path: 'sbin/sshd', want: 'usr/sbin/sshd' },
  { path: 'etc/dirlink/sbin/sshd', want: 'usr/sbin/sshd' },
  { path: 'etc/hostdir/usr/sbin/sshd', want: 'usr/sbin/sshd' },
  { path: 'etc/hostdir', want: undefined },
  { path: 'etc/zero', want: undefined },
  { path: 'etc/loop1', want: undefined },
  { path: 'usr/lib/os-release/x', want: undefined },
  { path: 'nope', want: undefined },
  { path: 'etc', want: 'etc' },
];

for (const c of cases) {
  test(`resolveImagePath ${c.path} → ${String(c.want)}`, () => {
    assert.equal(resolveImagePath(c.path, meta, readlink)?.rel, c.want);
  });
}
