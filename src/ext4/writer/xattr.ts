/**
 * Extended attributes: the in-inode area after the extra fields, and one
 * shared-format block for what does not fit there. POSIX ACLs arrive in the
 * VFS xattr format (as tar carries them) and are stored in ext4's own.
 */
import { crc32cRaw, crc32cU64 } from './crc32c.js';
import { BLOCK_SIZE } from './geometry.js';
import { INLINE_XATTR_ROOM } from './inode.js';

const MAGIC = 0xea020000;
const ENTRY_HEAD = 16;
const BLOCK_HEAD = 32;

/** Name prefixes and their index (the prefix is not stored). Longest first. */
const PREFIXES: ReadonlyArray<[prefix: string, index: number]> = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['security.', 6],
  ['trusted.', 4],
  ['system.', 7],
  ['user.', 1],
];

export interface XattrEntry {
  index: number;
  name: Buffer;
  value: Buffer;
}

/** The stored form of one attribute; throws for a namespace ext4 cannot hold. */
export function xattrEntry(fullName: string, value: Buffer): XattrEntry {
  for (const [prefix, index] of PREFIXES) {
    if (!fullName.startsWith(prefix)) continue;
    const rest = fullName.slice(prefix.length);
    if ((index === 2 || index === 3) && rest !== '') continue;
    const name = Buffer.from(rest);
    if (name.length > 255) throw new Error(`xattr name ${JSON.stringify(fullName.slice(0, 40))}… is too long`);
    return { index, name, value: index === 2 || index === 3 ? aclToExt4(value, fullName) : value };
  }
  throw new Error(`xattr ${JSON.stringify(fullName)} is not in a namespace ext4 stores`);
}

/** VFS posix_acl xattr (version 2, 8-byte entries) → ext4 ACL (version 1, 4-byte entries for the id-less tags). */
export function aclToExt4(v: Buffer, name: string): Buffer {
  if (v.length < 4 || (v.length - 4) % 8 !== 0 || v.readUInt32LE(0) !== 2) {
    throw new Error(`xattr ${name} is not a POSIX ACL (version 2)`);
  }
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0])];
  for (let at = 4; at < v.length; at += 8) {
    const tag = v.readUInt16LE(at);
    const perm = v.readUInt16LE(at + 2);
    const withId = tag === 0x02 || tag === 0x08;
    if (!withId && ![0x01, 0x04, 0x10, 0x20].includes(tag)) throw new Error(`xattr ${name} has ACL tag ${tag}`);
    const e = Buffer.alloc(withId ? 8 : 4);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    if (withId) e.writeUInt32LE(v.readUInt32LE(at + 4), 4);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

const pad4 = (n: number): number => (n + 3) & ~3;
const entrySize = (e: XattrEntry): number => pad4(ENTRY_HEAD + e.name.length);

function entryHash(e: XattrEntry): number {
  let h = 0;
  for (const c of e.name) h = ((h << 5) ^ (h >>> 27) ^ (c >= 128 ? c - 256 : c)) >>> 0;
  const padded = Buffer.alloc(pad4(e.value.length));
  e.value.copy(padded);
  for (let at = 0; at < padded.length; at += 4) h = ((h << 16) ^ (h >>> 16) ^ padded.readUInt32LE(at)) >>> 0;
  return h;
}

/** Writes entries at `entriesAt` and values downward from `end`; value offsets count from `base`. */
function layout(buf: Buffer, entries: readonly XattrEntry[], entriesAt: number, end: number, base: number): number[] {
  const hashes: number[] = [];
  let at = entriesAt;
  let valueEnd = end;
  for (const e of entries) {
    valueEnd -= pad4(e.value.length);
    const h = entryHash(e);
    hashes.push(h);
    buf.writeUInt8(e.name.length, at);
    buf.writeUInt8(e.index, at + 1);
    buf.writeUInt16LE(e.value.length === 0 ? 0 : valueEnd - base, at + 2);
    buf.writeUInt32LE(e.value.length, at + 8);
    buf.writeUInt32LE(h, at + 12);
    e.name.copy(buf, at + ENTRY_HEAD);
    e.value.copy(buf, valueEnd);
    at += entrySize(e);
  }
  if (at + 4 > valueEnd) throw new Error('xattrs overflow their area');
  return hashes;
}

const need = (list: readonly XattrEntry[]): number =>
  list.reduce((n, e) => n + entrySize(e) + pad4(e.value.length), 0) + 4;

export interface XattrPlan {
  /** The in-inode area (magic first), empty when nothing is stored there. */
  inline: Buffer;
  /** The block's contents given its number (for the checksum), when one is needed. */
  block?: (blockNr: number, fsSeed: number) => Buffer;
}

/** Sorted as ext4 keeps them: by index, then name length, then name. */
function sorted(list: readonly XattrEntry[]): XattrEntry[] {
  return [...list].sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
}

/** Places attributes in the inode while they fit (in order), the rest in one block. */
export function planXattrs(list: readonly XattrEntry[]): XattrPlan {
  const all = sorted(list);
  const inInode: XattrEntry[] = [];
  let i = 0;
  while (i < all.length && need([...inInode, all[i] as XattrEntry]) + 4 <= INLINE_XATTR_ROOM)
    inInode.push(all[i++] as XattrEntry);
  const rest = all.slice(i);
  let inline = Buffer.alloc(0);
  if (inInode.length > 0) {
    inline = Buffer.alloc(INLINE_XATTR_ROOM);
    inline.writeUInt32LE(MAGIC, 0);
    layout(inline, inInode, 4, INLINE_XATTR_ROOM, 4);
  }
  if (rest.length === 0) return { inline };
  if (need(rest) + BLOCK_HEAD > BLOCK_SIZE) throw new Error(`xattrs of ${need(rest)} bytes do not fit in one block`);
  return {
    inline,
    block: (blockNr, fsSeed) => {
      const b = Buffer.alloc(BLOCK_SIZE);
      b.writeUInt32LE(MAGIC, 0);
      b.writeUInt32LE(1, 4); // refcount
      b.writeUInt32LE(1, 8); // blocks
      const hashes = layout(b, rest, BLOCK_HEAD, BLOCK_SIZE, 0);
      let h = 0;
      for (const eh of hashes) h = ((h << 16) ^ (h >>> 16) ^ eh) >>> 0;
      b.writeUInt32LE(h, 0x0c);
      b.writeUInt32LE(crc32cRaw(crc32cU64(fsSeed, blockNr), b), 0x10);
      return b;
    },
  };
}
