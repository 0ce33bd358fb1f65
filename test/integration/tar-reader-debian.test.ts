/**
 * Integration (no network once the Debian tree is cached): our tar reader
 * (src/archive/tar-reader.ts) against tar-stream on the Debian test tree
 * the image tests pull. Every entry must read the same (name, type, mode,
 * owner, size, mtime, link target, content hash); the PAX xattrs (the POSIX
 * ACLs of /var/log/journal) must come out byte-exact, which tar-stream's
 * text decoding cannot do.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { test } from 'node:test';
import { extract } from 'tar-stream';
import { readTar } from '../../src/archive/tar-reader.js';
import { debianBaseTar } from '../helpers/oci-push.js';
import { missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(missingTools(['mmdebstrap']), 'apt install mmdebstrap');
const PACKAGES = ['systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'openssh-server', 'iproute2', 'sudo'];

const TYPES: Record<string, string> = {
  file: 'file',
  directory: 'dir',
  symlink: 'symlink',
  link: 'link',
  fifo: 'fifo',
  'character-device': 'chr',
  'block-device': 'blk',
};

/** An ACL in the kernel's VFS form: version 2, then 8-byte entries (tag, perm, id). */
function isVfsAcl(v: Buffer): boolean {
  if (v.length < 4 || (v.length - 4) % 8 !== 0 || v.readUInt32LE(0) !== 2) return false;
  for (let o = 4; o < v.length; o += 8) {
    if (![0x01, 0x02, 0x04, 0x08, 0x10, 0x20].includes(v.readUInt16LE(o))) return false;
  }
  return true;
}

test(
  'the Debian tree reads the same through our reader as through tar-stream, xattrs byte-exact',
  { skip },
  async () => {
    const path = debianBaseTar(PACKAGES);
    const theirs: string[] = [];
    const paxXattrs = new Map<string, string[]>();
    const ex = extract();
    createReadStream(path).pipe(ex);
    for await (const e of ex) {
      const h = createHash('sha256');
      for await (const c of e) h.update(c as Buffer);
      const x = e.header;
      const mtime = Math.floor((x.mtime?.getTime() ?? 0) / 1000);
      const row = [x.name, TYPES[x.type ?? ''], ((x.mode ?? 0) & 0o7777).toString(8), x.uid, x.gid, x.size, mtime];
      theirs.push(JSON.stringify([...row, x.linkname ?? '', x.devmajor ?? 0, x.devminor ?? 0, h.digest('hex')]));
      const names = Object.keys(x.pax ?? {}).filter((k) => k.startsWith('SCHILY.xattr.'));
      if (names.length > 0) paxXattrs.set(x.name, names.map((k) => k.slice('SCHILY.xattr.'.length)).sort());
    }
    const mine: string[] = [];
    const xattrs = new Map<string, Array<[string, Buffer]>>();
    for await (const e of readTar(createReadStream(path), 'debian')) {
      const h = createHash('sha256');
      for await (const c of e.body) h.update(c);
      const x = e.header;
      const row = [x.name, x.type, x.mode.toString(8), x.uid, x.gid, x.size, x.mtime.sec];
      mine.push(JSON.stringify([...row, x.linkname, x.devmajor, x.devminor, h.digest('hex')]));
      if (x.xattrs.length > 0) xattrs.set(x.name, x.xattrs);
    }
    assert.ok(mine.length > 9000, `${mine.length} entries`);
    assert.deepEqual(mine, theirs);
    // The same entries carry xattrs, with the same names; ours are real ACLs byte for byte.
    assert.deepEqual(
      [...xattrs].map(([n, list]) => [n, list.map(([k]) => k).sort()]),
      [...paxXattrs],
    );
    assert.ok(xattrs.size > 0, 'the Debian tree has PAX xattrs (the ACLs of /var/log/journal)');
    for (const [name, list] of xattrs) {
      for (const [k, v] of list) {
        if (k.startsWith('system.posix_acl_')) assert.ok(isVfsAcl(v), `${name} ${k}: ${v.toString('hex')}`);
      }
    }
  },
);
