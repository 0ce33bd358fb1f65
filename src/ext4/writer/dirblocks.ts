/** Linear directory blocks, each ending in the metadata_csum tail entry. */
import { crc32cRaw } from './crc32c.js';
import { BLOCK_SIZE } from './geometry.js';

export const FT = { unknown: 0, file: 1, dir: 2, chr: 3, blk: 4, fifo: 5, sock: 6, symlink: 7 } as const;
export type FileType = keyof typeof FT;

export interface DirEntry {
  name: Buffer;
  ino: number;
  type: FileType;
}

const TAIL = 12;
const USABLE = BLOCK_SIZE - TAIL;

/** Bytes one entry needs: 8 bytes of header and the name, rounded up to 4. */
export function recLen(nameLen: number): number {
  return (8 + nameLen + 3) & ~3;
}

function putEntry(b: Buffer, at: number, e: DirEntry, rec: number): void {
  b.writeUInt32LE(e.ino, at);
  b.writeUInt16LE(rec, at + 4);
  b.writeUInt8(e.name.length, at + 6);
  b.writeUInt8(FT[e.type], at + 7);
  e.name.copy(b, at + 8);
}

/** Writes the tail entry (inode 0, rec_len 12, type 0xDE) with the block's checksum. */
export function sealDirBlock(b: Buffer, inoSeed: number): void {
  b.fill(0, USABLE);
  b.writeUInt16LE(TAIL, USABLE + 4);
  b.writeUInt8(0xde, USABLE + 7);
  b.writeUInt32LE(crc32cRaw(inoSeed, b, 0, USABLE), USABLE + 8);
}

/** A directory block holding no entries (one unused entry spanning it). */
export function emptyDirBlock(inoSeed: number): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.writeUInt16LE(USABLE, 4);
  sealDirBlock(b, inoSeed);
  return b;
}

/** Packs entries in order into sealed blocks; the last entry of each block spans to the tail. */
export function packEntries(all: readonly DirEntry[], inoSeed: number): Array<{ block: Buffer; first: number }> {
  const blocks: Array<{ block: Buffer; first: number }> = [];
  let cur = Buffer.alloc(BLOCK_SIZE);
  let used = 0;
  let lastAt = -1;
  let first = 0;
  const close = (): void => {
    if (lastAt >= 0) cur.writeUInt16LE(USABLE - lastAt, lastAt + 4);
    else cur.writeUInt16LE(USABLE, 4);
    sealDirBlock(cur, inoSeed);
    blocks.push({ block: cur, first });
  };
  for (const [i, e] of all.entries()) {
    if (e.name.length === 0 || e.name.length > 255) throw new Error(`directory entry name of ${e.name.length} bytes`);
    const rec = recLen(e.name.length);
    if (used + rec > USABLE) {
      close();
      cur = Buffer.alloc(BLOCK_SIZE);
      used = 0;
      first = i;
    }
    putEntry(cur, used, e, rec);
    lastAt = used;
    used += rec;
  }
  close();
  return blocks;
}

/** `.` and `..` of a directory. */
export function dotEntries(self: number, parent: number): DirEntry[] {
  return [
    { name: Buffer.from('.'), ino: self, type: 'dir' },
    { name: Buffer.from('..'), ino: parent, type: 'dir' },
  ];
}

/** The blocks of a linear directory: `.` and `..` first, then `entries` in order; at least `minBlocks`. */
export function linearDirBlocks(
  self: number,
  parent: number,
  entries: readonly DirEntry[],
  inoSeed: number,
  minBlocks = 1,
): Buffer[] {
  const blocks = packEntries([...dotEntries(self, parent), ...entries], inoSeed).map((b) => b.block);
  while (blocks.length < minBlocks) blocks.push(emptyDirBlock(inoSeed));
  return blocks;
}
