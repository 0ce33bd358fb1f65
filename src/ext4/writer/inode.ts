/** Inode records and their 256-byte on-disk encoding (with the metadata_csum checksum). */
import { crc32cRaw, crc32cU32 } from './crc32c.js';
import { INODE_SIZE } from './geometry.js';
import { EXTRA_ISIZE } from './superblock.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

export const EXT4_EXTENTS_FL = 0x80000;
export const EXT4_INDEX_FL = 0x1000;

/** A time as whole seconds since the epoch plus nanoseconds. */
export interface Timestamp {
  sec: number;
  nsec: number;
}

export interface InodeRec {
  /** Type and permission bits, as st_mode. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  crtime: Timestamp;
  links: number;
  flags: number;
  /** The 60-byte i_block area: extent root, fast symlink target or device number. */
  iblock: Buffer;
  /** 512-byte sectors the inode owns (data, extent tree and xattr blocks). */
  sectors: number;
  /** Block of the inode's extended attribute block, 0 for none. */
  xattrBlock: number;
  /** The in-inode xattr area (magic included) written after the extra fields; empty for none. */
  inlineXattrs: Buffer;
}

/** The per-inode checksum seed (extent and directory block tails use it too). */
export function inodeSeed(fsSeed: number, ino: number, generation = 0): number {
  return crc32cU32(crc32cU32(fsSeed, ino), generation);
}

/** Room for in-inode xattrs: everything after the extra fields. */
export const INLINE_XATTR_ROOM = INODE_SIZE - 128 - EXTRA_ISIZE;

function putTime(b: Buffer, t: Timestamp, at: number, extraAt: number): void {
  // Seconds beyond 32 bits go to the two epoch bits of the extra field.
  const lo = t.sec | 0;
  const epoch = Math.floor((t.sec - lo) / 2 ** 32) & 3;
  b.writeInt32LE(lo, at);
  b.writeUInt32LE(((t.nsec << 2) | epoch) >>> 0, extraAt);
}

export function encodeInode(r: InodeRec, ino: number, fsSeed: number): Buffer {
  const b = Buffer.alloc(INODE_SIZE);
  b.writeUInt16LE(r.mode & 0xffff, 0x00);
  b.writeUInt16LE(r.uid & 0xffff, 0x02);
  b.writeUInt32LE(r.size % 2 ** 32, 0x04);
  putTime(b, r.atime, 0x08, 0x8c);
  putTime(b, r.ctime, 0x0c, 0x84);
  putTime(b, r.mtime, 0x10, 0x88);
  b.writeUInt16LE(r.gid & 0xffff, 0x18);
  b.writeUInt16LE(r.links, 0x1a);
  b.writeUInt32LE(r.sectors % 2 ** 32, 0x1c);
  b.writeUInt32LE(r.flags, 0x20);
  r.iblock.copy(b, 0x28, 0, 60);
  b.writeUInt32LE(r.xattrBlock % 2 ** 32, 0x68);
  b.writeUInt32LE(Math.floor(r.size / 2 ** 32), 0x6c);
  b.writeUInt16LE(Math.floor(r.sectors / 2 ** 32), 0x74);
  b.writeUInt16LE(Math.floor(r.xattrBlock / 2 ** 32), 0x76);
  b.writeUInt16LE(r.uid >>> 16, 0x78);
  b.writeUInt16LE(r.gid >>> 16, 0x7a);
  b.writeUInt16LE(EXTRA_ISIZE, 0x80);
  putTime(b, r.crtime, 0x90, 0x94);
  if (r.inlineXattrs.length > INLINE_XATTR_ROOM) throw new Error(`in-inode xattrs of inode ${ino} do not fit`);
  r.inlineXattrs.copy(b, 128 + EXTRA_ISIZE);
  const crc = crc32cRaw(inodeSeed(fsSeed, ino), b);
  b.writeUInt16LE(crc & 0xffff, 0x7c);
  b.writeUInt16LE(crc >>> 16, 0x82);
  return b;
}

/** A time from a JS Date or seconds value, split into seconds and nanoseconds. */
export function timestampOf(d: Date | number): Timestamp {
  const ms = typeof d === 'number' ? d * 1000 : d.getTime();
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1e6) };
}
