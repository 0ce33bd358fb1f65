/**
 * The second half of a write: directory blocks, extent trees, inode tables,
 * bitmaps, group descriptors and the superblock with its backups.
 */
import { appendRuns } from './alloc.js';
import { crc32cRaw } from './crc32c.js';
import { linearDirBlocks } from './dirblocks.js';
import { buildExtentTree, splitRuns, type Extent } from './extents.js';
import { BLOCK_SIZE, BLOCKS_PER_GROUP, INODE_SIZE, INODES_PER_BLOCK } from './geometry.js';
import { htreeDirBlocks } from './htree.js';
import { encodeInode, EXT4_INDEX_FL, inodeSeed } from './inode.js';
import { JOURNAL_INO } from './journal.js';
import {
  BG_INODE_ZEROED,
  encodeGroupDesc,
  encodeSuperblock,
  FIRST_INO,
  LOST_FOUND_INO,
  type GroupDescFields,
} from './superblock.js';
import type { InodeState, WriterState } from './writer.js';

/** Directory link count: 2 + subdirectories, or 1 once that passes what i_links_count holds (dir_nlink). */
function dirLinks(subdirs: number): number {
  return 2 + subdirs >= 65000 ? 1 : 2 + subdirs;
}

async function writeRuns(
  s: WriterState,
  runs: ReadonlyArray<{ start: number; len: number }>,
  data: Buffer[],
): Promise<void> {
  let i = 0;
  for (const r of runs) {
    for (let k = 0; k < r.len; k++) await s.sink.write(r.start + k, data[i++] as Buffer);
  }
}

async function writeDirectories(s: WriterState): Promise<void> {
  for (const [ino, rec] of s.inodes) {
    if (rec.dir === undefined) continue;
    const entries = [...rec.dir.entries.values()];
    const seed = inodeSeed(s.seed, ino);
    let blocks = linearDirBlocks(ino, rec.dir.parent, entries, seed, ino === LOST_FOUND_INO ? 4 : 1);
    // More than one block of entries: index them, as the kernel does once a directory grows past one block.
    if (blocks.length > 1 && ino !== LOST_FOUND_INO) {
      blocks = htreeDirBlocks(ino, rec.dir.parent, entries, seed, s.hashSeed);
      rec.flags |= EXT4_INDEX_FL;
    }
    const runs = s.alloc.allocRuns(blocks.length);
    appendRuns(rec.extents as Extent[], 0, runs);
    await writeRuns(s, runs, blocks);
    rec.size = blocks.length * BLOCK_SIZE;
    rec.sectors += blocks.length * (BLOCK_SIZE / 512);
    rec.links = dirLinks(entries.filter((e) => e.type === 'dir').length);
  }
}

async function writeExtentTrees(s: WriterState): Promise<void> {
  for (const [ino, rec] of s.inodes) {
    if (rec.extents === undefined) continue;
    const tree = buildExtentTree(splitRuns(rec.extents), inodeSeed(s.seed, ino), (n) => s.alloc.allocBlocks(n));
    rec.iblock = tree.iblock;
    for (const b of tree.blocks) await s.sink.write(b.block, b.data);
    rec.sectors += tree.blocks.length * (BLOCK_SIZE / 512);
  }
}

interface GroupCounts {
  usedInodes: number[];
  dirs: number[];
  /** Highest used inode index (1-based within the group), 0 for none. */
  highest: number[];
}

async function writeInodeTables(s: WriterState): Promise<GroupCounts> {
  const { geo } = s;
  const ipg = geo.inodesPerGroup;
  const counts: GroupCounts = {
    usedInodes: new Array<number>(geo.groupCount).fill(0),
    dirs: new Array<number>(geo.groupCount).fill(0),
    highest: new Array<number>(geo.groupCount).fill(0),
  };
  // Reserved inodes 1..FIRST_INO-1 count as used whether or not they hold anything.
  counts.usedInodes[0] = FIRST_INO - 1;
  counts.highest[0] = FIRST_INO - 1;
  const byBlock = new Map<number, Array<[number, InodeState]>>();
  for (const [ino, rec] of s.inodes) {
    const g = Math.floor((ino - 1) / ipg);
    const idx = (ino - 1) % ipg;
    if (ino >= FIRST_INO) counts.usedInodes[g] = (counts.usedInodes[g] as number) + 1;
    if (rec.dir) counts.dirs[g] = (counts.dirs[g] as number) + 1;
    counts.highest[g] = Math.max(counts.highest[g] as number, idx + 1);
    const block = (geo.groups[g] as { inodeTable: number }).inodeTable + Math.floor(idx / INODES_PER_BLOCK);
    let list = byBlock.get(block);
    if (list === undefined) byBlock.set(block, (list = []));
    list.push([ino, rec]);
  }
  for (const block of [...byBlock.keys()].sort((a, b) => a - b)) {
    const data = Buffer.alloc(BLOCK_SIZE);
    for (const [ino, rec] of byBlock.get(block) as Array<[number, InodeState]>) {
      encodeInode(rec, ino, s.seed).copy(data, (((ino - 1) % ipg) % INODES_PER_BLOCK) * INODE_SIZE);
    }
    await s.sink.write(block, data);
  }
  return counts;
}

function countZeroBits(bitmap: Buffer, bits: number): number {
  let zeros = 0;
  for (let i = 0; i < bits; i++) if (((bitmap[i >>> 3] as number) & (1 << (i & 7))) === 0) zeros++;
  return zeros;
}

export async function finishImage(s: WriterState): Promise<{ inodes: number; blocks: number }> {
  for (const p of s.pending) await s.sink.write(p.block, p.data);
  await writeDirectories(s);
  await writeExtentTrees(s);
  const counts = await writeInodeTables(s);
  const { geo } = s;
  const ipg = geo.inodesPerGroup;
  const descs: Buffer[] = [];
  let freeBlocks = 0;
  let freeInodes = 0;
  for (const [g, plan] of geo.groups.entries()) {
    const bbitmap = s.alloc.bitmapOf(plan.start, plan.blocks, BLOCK_SIZE);
    const ibitmap = Buffer.alloc(BLOCK_SIZE);
    // Used inodes, then the padding past inodes_per_group set to one.
    for (let i = 0; i < BLOCK_SIZE * 8; i++) {
      const ino = g * ipg + i + 1;
      if (i >= ipg || (ino < FIRST_INO && g === 0) || s.inodes.has(ino))
        ibitmap[i >>> 3] = (ibitmap[i >>> 3] as number) | (1 << (i & 7));
    }
    await s.sink.write(plan.blockBitmap, bbitmap);
    await s.sink.write(plan.inodeBitmap, ibitmap);
    const gFreeBlocks = countZeroBits(bbitmap, plan.blocks);
    const gFreeInodes = ipg - (counts.usedInodes[g] as number);
    freeBlocks += gFreeBlocks;
    freeInodes += gFreeInodes;
    const d: GroupDescFields = {
      blockBitmap: plan.blockBitmap,
      inodeBitmap: plan.inodeBitmap,
      inodeTable: plan.inodeTable,
      freeBlocks: gFreeBlocks,
      freeInodes: gFreeInodes,
      usedDirs: counts.dirs[g] as number,
      flags: BG_INODE_ZEROED,
      blockBitmapCsum: crc32cRaw(s.seed, bbitmap, 0, BLOCKS_PER_GROUP / 8),
      inodeBitmapCsum: crc32cRaw(s.seed, ibitmap, 0, ipg / 8),
      itableUnused: ipg - (counts.highest[g] as number),
    };
    descs.push(encodeGroupDesc(d, g, s.seed));
  }
  const gdt = Buffer.alloc(geo.gdtBlocks * BLOCK_SIZE);
  descs.forEach((d, i) => d.copy(gdt, i * d.length));
  const journalRec = s.inodes.get(JOURNAL_INO);
  const fields = {
    geo,
    freeBlocks,
    freeInodes,
    uuid: s.uuid,
    hashSeed: s.hashSeed,
    label: s.label,
    now: s.now,
    journal: journalRec ? { inum: JOURNAL_INO, iblock: journalRec.iblock, sizeBytes: journalRec.size } : undefined,
  };
  for (const [g, plan] of geo.groups.entries()) {
    if (!plan.hasSuper) continue;
    await s.sink.write(plan.start + 1, gdt);
    const sb = encodeSuperblock(fields, g);
    if (g === 0) await s.sink.writeAt(sb, 1024);
    else await s.sink.write(plan.start, sb);
  }
  await s.sink.drain();
  return { inodes: s.inodes.size, blocks: geo.blocksCount - freeBlocks };
}
