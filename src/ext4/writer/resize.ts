/**
 * The resize inode (7): a block-mapped file whose double-indirect block lists
 * the reserved descriptor-table blocks after the primary table, each of which
 * in turn lists its copies in the backup groups. The kernel's online resize
 * turns those reserved blocks into descriptor blocks as the filesystem grows.
 */
import { BLOCK_SIZE, type Geometry } from './geometry.js';

export const RESIZE_INO = 7;
const ADDR_PER_BLOCK = BLOCK_SIZE / 4;
const DIND_SLOT = 13;

export interface ResizeInode {
  iblock: Buffer;
  size: number;
  /** 512-byte sectors: the dind block, the primary reserved blocks and their backups. */
  sectors: number;
  /** Blocks to write: the dind block and the primary reserved blocks (as indirect blocks). */
  blocks: Array<{ block: number; data: Buffer }>;
}

export function resizeInode(geo: Geometry, dind: number): ResizeInode {
  const backups = geo.groups.filter((g, i) => i > 0 && g.hasSuper);
  if (backups.length > ADDR_PER_BLOCK) throw new Error('too many backup groups for the resize inode');
  const dindData = Buffer.alloc(BLOCK_SIZE);
  const blocks: ResizeInode['blocks'] = [{ block: dind, data: dindData }];
  for (let i = 0; i < geo.reservedGdt; i++) {
    const primary = 1 + geo.gdtBlocks + i;
    // The slot is the descriptor block's index in the table (what the kernel's online resize reads),
    // not its block number: with 4 KiB blocks the table starts at block 1, not 0.
    dindData.writeUInt32LE(primary, ((geo.gdtBlocks + i) % ADDR_PER_BLOCK) * 4);
    const list = Buffer.alloc(BLOCK_SIZE);
    backups.forEach((g, j) => list.writeUInt32LE(g.start + 1 + geo.gdtBlocks + i, j * 4));
    blocks.push({ block: primary, data: list });
  }
  const iblock = Buffer.alloc(60);
  iblock.writeUInt32LE(dind, DIND_SLOT * 4);
  return {
    iblock,
    size: (ADDR_PER_BLOCK * ADDR_PER_BLOCK + ADDR_PER_BLOCK + 12) * BLOCK_SIZE,
    sectors: (1 + geo.reservedGdt * (1 + backups.length)) * (BLOCK_SIZE / 512),
    blocks,
  };
}
