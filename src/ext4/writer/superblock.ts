/**
 * The superblock and group descriptors of a new image, encoded byte by byte
 * from the ext4 on-disk format (Documentation/filesystems/ext4/).
 */
import { crc32cRaw, crc32cU32 } from './crc32c.js';
import { BLOCKS_PER_GROUP, DESC_SIZE, INODE_SIZE, type Geometry } from './geometry.js';

export const COMPAT = { hasJournal: 0x4, extAttr: 0x8, resizeInode: 0x10, dirIndex: 0x20 } as const;
export const INCOMPAT = { filetype: 0x2, extents: 0x40, bit64: 0x80, flexBg: 0x200 } as const;
export const RO_COMPAT = {
  sparseSuper: 0x1,
  largeFile: 0x2,
  hugeFile: 0x8,
  dirNlink: 0x20,
  extraIsize: 0x40,
  metadataCsum: 0x400,
} as const;

export const FIRST_INO = 11;
export const ROOT_INO = 2;
export const LOST_FOUND_INO = 11;
/** i_extra_isize of every inode written (covers the nanosecond times, crtime and projid). */
export const EXTRA_ISIZE = 32;

export interface SuperblockFields {
  geo: Geometry;
  freeBlocks: number;
  freeInodes: number;
  uuid: Uint8Array;
  hashSeed: Uint8Array;
  label: string;
  /** Seconds since the epoch, for the mkfs/write times. */
  now: number;
  /** Journal inode number (0 without a journal) and a copy of its i_block and size. */
  journal?: { inum: number; iblock: Uint8Array; sizeBytes: number } | undefined;
}

/** crc32c(~0, uuid): the seed of every metadata checksum (no csum_seed feature). */
export function checksumSeed(uuid: Uint8Array): number {
  return crc32cRaw(0xffffffff, uuid);
}

/** The 1024-byte superblock as group `groupNr` stores it. */
export function encodeSuperblock(f: SuperblockFields, groupNr: number): Buffer {
  const b = Buffer.alloc(1024);
  const { geo } = f;
  const lo = (v: number): number => v % 2 ** 32;
  const hi = (v: number): number => Math.floor(v / 2 ** 32);
  b.writeUInt32LE(geo.inodesPerGroup * geo.groupCount, 0x00);
  b.writeUInt32LE(lo(geo.blocksCount), 0x04);
  b.writeUInt32LE(0, 0x08); // no blocks reserved for root: VM images, not a shared host disk
  b.writeUInt32LE(lo(f.freeBlocks), 0x0c);
  b.writeUInt32LE(f.freeInodes, 0x10);
  b.writeUInt32LE(0, 0x14); // first data block (0 for 4 KiB blocks)
  b.writeUInt32LE(2, 0x18); // log2(block size) - 10
  b.writeUInt32LE(2, 0x1c); // log2(cluster size) - 10
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x20);
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x24);
  b.writeUInt32LE(geo.inodesPerGroup, 0x28);
  b.writeUInt32LE(f.now, 0x30); // write time
  b.writeUInt16LE(0xffff, 0x36); // max mount count: -1, no forced checks
  b.writeUInt16LE(0xef53, 0x38);
  b.writeUInt16LE(1, 0x3a); // cleanly unmounted
  b.writeUInt16LE(1, 0x3c); // errors: continue
  b.writeUInt32LE(f.now, 0x40); // last check
  b.writeUInt32LE(1, 0x4c); // dynamic revision
  b.writeUInt32LE(FIRST_INO, 0x54);
  b.writeUInt16LE(INODE_SIZE, 0x58);
  b.writeUInt16LE(groupNr, 0x5a);
  const resize = geo.reservedGdt > 0 ? COMPAT.resizeInode : 0;
  b.writeUInt32LE(COMPAT.extAttr | COMPAT.dirIndex | resize | (f.journal ? COMPAT.hasJournal : 0), 0x5c);
  b.writeUInt32LE(INCOMPAT.filetype | INCOMPAT.extents | INCOMPAT.bit64 | INCOMPAT.flexBg, 0x60);
  b.writeUInt32LE(
    Object.values(RO_COMPAT).reduce((a, v) => a | v, 0),
    0x64,
  );
  b.set(f.uuid.subarray(0, 16), 0x68);
  b.write(f.label.slice(0, 16), 0x78, 'utf8');
  b.writeUInt16LE(geo.reservedGdt, 0xce);
  if (f.journal) b.writeUInt32LE(f.journal.inum, 0xe0);
  b.set(f.hashSeed.subarray(0, 16), 0xec);
  b.writeUInt8(1, 0xfc); // default hash: half_md4
  b.writeUInt16LE(DESC_SIZE, 0xfe);
  b.writeUInt32LE(0x000c, 0x100); // default mount options: user_xattr, acl
  b.writeUInt32LE(f.now, 0x108); // mkfs time
  if (f.journal) {
    b.writeUInt8(1, 0xfd); // s_jnl_blocks holds a backup of the journal inode's block map
    b.set(f.journal.iblock.subarray(0, 60), 0x10c);
    b.writeUInt32LE(hi(f.journal.sizeBytes), 0x10c + 60);
    b.writeUInt32LE(lo(f.journal.sizeBytes), 0x10c + 64);
  }
  b.writeUInt32LE(hi(geo.blocksCount), 0x150);
  b.writeUInt32LE(hi(f.freeBlocks), 0x158);
  b.writeUInt16LE(EXTRA_ISIZE, 0x15c);
  b.writeUInt16LE(EXTRA_ISIZE, 0x15e);
  b.writeUInt32LE(0x1, 0x160); // signed directory hash (as x86 mke2fs writes)
  b.writeUInt8(Math.log2(16), 0x174); // log2(groups per flex)
  b.writeUInt8(1, 0x175); // checksum type: crc32c
  b.writeUInt32LE(crc32cRaw(0xffffffff, b, 0, 0x3fc), 0x3fc);
  return b;
}

export interface GroupDescFields {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  itableUnused: number;
}

export const BG_INODE_ZEROED = 0x4;

/** One 64-byte group descriptor, checksummed for group `g`. */
export function encodeGroupDesc(d: GroupDescFields, g: number, seed: number): Buffer {
  const b = Buffer.alloc(DESC_SIZE);
  const put32 = (v: number, loAt: number, hiAt: number): void => {
    b.writeUInt32LE(v % 2 ** 32, loAt);
    b.writeUInt32LE(Math.floor(v / 2 ** 32), hiAt);
  };
  const put16 = (v: number, loAt: number, hiAt: number): void => {
    b.writeUInt16LE(v & 0xffff, loAt);
    b.writeUInt16LE(v >>> 16, hiAt);
  };
  put32(d.blockBitmap, 0x00, 0x20);
  put32(d.inodeBitmap, 0x04, 0x24);
  put32(d.inodeTable, 0x08, 0x28);
  put16(d.freeBlocks, 0x0c, 0x2c);
  put16(d.freeInodes, 0x0e, 0x2e);
  put16(d.usedDirs, 0x10, 0x30);
  b.writeUInt16LE(d.flags, 0x12);
  put16(d.blockBitmapCsum, 0x18, 0x38);
  put16(d.inodeBitmapCsum, 0x1a, 0x3a);
  put16(d.itableUnused, 0x1c, 0x32);
  const crc = crc32cRaw(crc32cU32(seed, g), b); // the checksum field itself is still zero here
  b.writeUInt16LE(crc & 0xffff, 0x1e);
  return b;
}
