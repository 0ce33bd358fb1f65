import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32cRaw } from './crc32c.js';
import { buildExtentTree, splitRuns, BLOCK_MAX } from './extents.js';
import { groupHasSuper, metadataRanges, planGeometry, reservedGdtBlocks } from './geometry.js';
import { linearDirBlocks, recLen } from './dirblocks.js';

test('crc32c matches the standard check value (raw register, inverted in and out by the caller)', () => {
  const crc = ~crc32cRaw(0xffffffff, Buffer.from('123456789')) >>> 0;
  assert.equal(crc, 0xe3069283);
});

test('sparse_super puts superblock copies in groups 0, 1 and powers of 3, 5, 7', () => {
  const withSuper = Array.from({ length: 60 }, (_, g) => g).filter(groupHasSuper);
  assert.deepEqual(withSuper, [0, 1, 3, 5, 7, 9, 25, 27, 49]);
});

for (const c of [
  { size: 64 * 2 ** 20, inodes: 4096, groups: 1, ipg: 4096, blocks: 16384 },
  { size: 2 * 2 ** 30, inodes: 131072, groups: 16, ipg: 8192, blocks: 524288 },
  // a tail under 512 blocks is left off, as mke2fs does
  { size: 128 * 2 ** 20 + 100 * 4096, inodes: 1000, groups: 1, ipg: 1008, blocks: 32768 },
  { size: 20 * 2 ** 30, inodes: 100000, groups: 160, ipg: 640, blocks: 5242880 },
]) {
  test(`geometry of ${c.size} bytes / ${c.inodes} inodes: ${c.groups} groups of ${c.ipg} inodes`, () => {
    const geo = planGeometry(c.size, c.inodes);
    assert.equal(geo.groupCount, c.groups);
    assert.equal(geo.inodesPerGroup, c.ipg);
    assert.equal(geo.blocksCount, c.blocks);
    // No two metadata ranges overlap, and all lie inside the filesystem.
    const seen = new Set<number>();
    for (const [start, n] of metadataRanges(geo)) {
      for (let b = start; b < start + n; b++) {
        assert.ok(b < geo.blocksCount, `block ${b} past the end`);
        assert.ok(!seen.has(b), `block ${b} used twice`);
        seen.add(b);
      }
    }
  });
}

test('geometry refuses a size with no room for its own metadata', () => {
  assert.throws(() => planGeometry(0, 16), /too small/);
  assert.throws(() => planGeometry(100 * 4096, 20000), /no room|do not fit/);
});

test('extent trees: depth 0 up to 4 extents, 1 up to 4 leaves, 2 beyond', () => {
  for (const [n, depth, blocks] of [
    [4, 0, 0],
    [5, 1, 1],
    [4 * BLOCK_MAX, 1, 4],
    [4 * BLOCK_MAX + 1, 2, 6],
  ] as const) {
    const ext = Array.from({ length: n }, (_, i) => ({ logical: i * 2, len: 1, start: 1000 + i }));
    let next = 100000;
    const tree = buildExtentTree(ext, 0, (k) => Array.from({ length: k }, () => next++));
    assert.equal(tree.iblock.readUInt16LE(0), 0xf30a);
    assert.equal(tree.iblock.readUInt16LE(6), depth, `${n} extents`);
    assert.equal(tree.blocks.length, blocks, `${n} extents`);
  }
});

test('runs longer than 32768 blocks are split into several extents', () => {
  assert.deepEqual(splitRuns([{ logical: 0, len: 70000, start: 5 }]), [
    { logical: 0, len: 32768, start: 5 },
    { logical: 32768, len: 32768, start: 32773 },
    { logical: 65536, len: 4464, start: 65541 },
  ]);
});

test('linear directory blocks: entries fill a block up to its tail, then spill', () => {
  assert.equal(recLen(1), 12);
  assert.equal(recLen(255), 264);
  const entries = Array.from({ length: 300 }, (_, i) => ({
    name: Buffer.from(`file-${String(i).padStart(20, '0')}`),
    ino: 20 + i,
    type: 'file' as const,
  }));
  const blocks = linearDirBlocks(12, 2, entries, 0);
  // 36-byte entries: 113 per 4084 usable bytes (minus . and .. in the first)
  assert.equal(blocks.length, 3);
  for (const b of blocks) {
    let at = 0;
    while (at < 4084) at += b.readUInt16LE(at + 4);
    assert.equal(at, 4084, 'records end exactly at the tail');
    assert.equal(b.readUInt8(4084 + 7), 0xde);
  }
  assert.equal(linearDirBlocks(11, 2, [], 0, 4).length, 4);
});

test('reserved descriptor blocks: room to grow 1024 times, at most one indirect block of them', () => {
  for (const [blocks, gdt, want] of [
    [16384, 1, 7],
    [179200, 1, 87],
    [524288, 1, 255],
    [8192, 1, 3],
    [5242880, 3, 1024],
  ] as const) {
    assert.equal(reservedGdtBlocks(blocks, gdt), want, `${blocks} blocks`);
  }
});
