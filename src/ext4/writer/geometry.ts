/**
 * Where everything goes in a new ext4 image: groups, the backup superblocks of
 * sparse_super, and the flex_bg-packed bitmaps and inode tables. Pure: the
 * writer and the tests both read this plan.
 */
export const BLOCK_SIZE = 4096;
export const BLOCKS_PER_GROUP = 32768;
export const INODE_SIZE = 256;
export const DESC_SIZE = 64;
export const FLEX_GROUPS = 16;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE;
/** Smallest last group kept (smaller tails are left off the filesystem, as mke2fs does). */
const MIN_TAIL_BLOCKS = 512;

export interface GroupPlan {
  /** First block of the group. */
  start: number;
  /** Blocks in the group (the last one may be shorter). */
  blocks: number;
  /** Holds a superblock copy and the group descriptor table. */
  hasSuper: boolean;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

export interface Geometry {
  blocksCount: number;
  groupCount: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
  /** Blocks of the group descriptor table (each copy). */
  gdtBlocks: number;
  /** Blocks kept free after each descriptor table copy for online growth (resize_inode). */
  reservedGdt: number;
  groups: GroupPlan[];
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

/** sparse_super: groups 0, 1 and powers of 3, 5 and 7 carry a superblock copy. */
export function groupHasSuper(g: number): boolean {
  return g <= 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/**
 * Descriptor-table blocks to reserve so the filesystem can grow online to
 * 1024 times its size (capped at 2^32 blocks and at what one indirect block maps).
 */
export function reservedGdtBlocks(blocksCount: number, gdtBlocks: number): number {
  const maxBlocks = Math.min(blocksCount * 1024, 2 ** 32 - 1);
  const groups = Math.ceil(maxBlocks / BLOCKS_PER_GROUP);
  const want = Math.ceil(groups / (BLOCK_SIZE / DESC_SIZE)) - gdtBlocks;
  return Math.max(0, Math.min(want, BLOCK_SIZE / 4));
}

/**
 * The layout of an image of `sizeBytes` with room for at least `inodes`
 * inodes. Throws when the size cannot hold its own metadata.
 */
export function planGeometry(sizeBytes: number, inodes: number): Geometry {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < BLOCK_SIZE) {
    throw new Error(`an ext4 image of ${sizeBytes} bytes is too small`);
  }
  let blocksCount = Math.floor(sizeBytes / BLOCK_SIZE);
  const tail = blocksCount % BLOCKS_PER_GROUP;
  if (blocksCount > BLOCKS_PER_GROUP && tail > 0 && tail < MIN_TAIL_BLOCKS) blocksCount -= tail;
  const groupCount = Math.ceil(blocksCount / BLOCKS_PER_GROUP);
  // Whole inode-table blocks per group, and a multiple of 8 for the bitmap.
  const perGroup = Math.ceil(Math.max(inodes, 16) / groupCount / INODES_PER_BLOCK) * INODES_PER_BLOCK;
  const inodesPerGroup = Math.min(perGroup, BLOCKS_PER_GROUP);
  if (inodesPerGroup * groupCount < inodes) throw new Error(`${inodes} inodes do not fit in ${groupCount} groups`);
  const inodeTableBlocks = inodesPerGroup / INODES_PER_BLOCK;
  const gdtBlocks = Math.ceil((groupCount * DESC_SIZE) / BLOCK_SIZE);
  const reservedGdt = reservedGdtBlocks(blocksCount, gdtBlocks);
  const groups: GroupPlan[] = [];
  for (let g = 0; g < groupCount; g++) {
    const start = g * BLOCKS_PER_GROUP;
    const blocks = Math.min(BLOCKS_PER_GROUP, blocksCount - start);
    groups.push({ start, blocks, hasSuper: groupHasSuper(g), blockBitmap: 0, inodeBitmap: 0, inodeTable: 0 });
  }
  // Each flex group keeps its members' bitmaps and tables packed after its first group's superblock copy.
  for (let f = 0; f < groupCount; f += FLEX_GROUPS) {
    const first = groups[f] as GroupPlan;
    const members = groups.slice(f, f + FLEX_GROUPS);
    let at = first.start + (first.hasSuper ? 1 + gdtBlocks + reservedGdt : 0);
    for (const m of members) m.blockBitmap = at++;
    for (const m of members) m.inodeBitmap = at++;
    for (const m of members) {
      m.inodeTable = at;
      at += inodeTableBlocks;
    }
    if (at > first.start + first.blocks) {
      throw new Error(`an ext4 image of ${sizeBytes} bytes has no room for its inode tables`);
    }
  }
  return { blocksCount, groupCount, inodesPerGroup, inodeTableBlocks, gdtBlocks, reservedGdt, groups };
}

/** Every block the layout itself occupies (superblock copies, descriptor tables, bitmaps, inode tables). */
export function metadataRanges(geo: Geometry): Array<[start: number, count: number]> {
  const out: Array<[number, number]> = [];
  for (const g of geo.groups) {
    if (g.hasSuper) out.push([g.start, 1 + geo.gdtBlocks + geo.reservedGdt]);
    out.push([g.blockBitmap, 1], [g.inodeBitmap, 1], [g.inodeTable, geo.inodeTableBlocks]);
  }
  return out;
}
