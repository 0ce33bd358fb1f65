/** The internal jbd2 journal: a clean, empty log described by its superblock. */
import { BLOCK_SIZE } from './geometry.js';

export const JOURNAL_INO = 8;

/** Journal length in blocks for a filesystem of `blocks` blocks (about what mke2fs picks). */
export function journalBlocksFor(blocks: number): number {
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  return 32768;
}

/** The journal superblock (v2, big-endian as jbd2 stores it), for a log of `blocks` blocks. */
export function journalSuperblock(blocks: number, uuid: Uint8Array): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.writeUInt32BE(0xc03b3998, 0x00); // magic
  b.writeUInt32BE(4, 0x04); // block type: superblock v2
  b.writeUInt32BE(BLOCK_SIZE, 0x0c);
  b.writeUInt32BE(blocks, 0x10); // s_maxlen
  b.writeUInt32BE(1, 0x14); // s_first: the log starts after this block
  b.writeUInt32BE(1, 0x18); // s_sequence
  // s_start = 0: nothing to replay.
  b.set(uuid.subarray(0, 16), 0x30);
  b.writeUInt32BE(1, 0x40); // s_nr_users
  return b;
}
