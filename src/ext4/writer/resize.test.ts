/*
 * The resize inode as the kernel's online resize reads it (fs/ext4/resize.c:
 * add_new_gdb, reserve_backup_gdb, verify_reserved_gdb), checked on the bytes
 * the writer lays down, not against the writer's own arithmetic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_SIZE, BLOCKS_PER_GROUP, planGeometry } from './geometry.js';
import { resizeInode } from './resize.js';

const ADDR_PER_BLOCK = BLOCK_SIZE / 4;

/** Backup groups in the order the kernel walks them: the powers of 3, 5 and 7 merged, ascending (1 first). */
function kernelBackupOrder(end: number): number[] {
  const out: number[] = [];
  let [three, five, seven] = [1, 5, 7];
  for (;;) {
    const next = Math.min(three, five, seven);
    if (next >= end) return out;
    out.push(next);
    if (next === three) three *= 3;
    else if (next === five) five *= 5;
    else seven *= 7;
  }
}

for (const c of [
  { size: 700 * 2 ** 20, gdt: 1 },
  { size: 2 * 2 ** 30, gdt: 1 },
  // Several descriptor blocks: the first reserved one is table index 3, block 4.
  { size: 20 * 2 ** 30, gdt: 3 },
]) {
  test(`resize inode of ${c.size} bytes: reserved descriptor blocks where online resize looks`, () => {
    const geo = planGeometry(c.size, Math.floor(c.size / 16384));
    assert.equal(geo.gdtBlocks, c.gdt);
    assert.ok(geo.reservedGdt > 0);
    const dindAt = 5_000_000;
    const r = resizeInode(geo, dindAt);
    assert.equal(r.iblock.readUInt32LE(13 * 4), dindAt, 'i_block[13] is the double-indirect block');
    for (let i = 0; i < 15; i++) if (i !== 13) assert.equal(r.iblock.readUInt32LE(i * 4), 0, `i_block[${i}]`);
    const byBlock = new Map(r.blocks.map((b) => [b.block, b.data]));
    const dind = byBlock.get(dindAt);
    assert.ok(dind);
    // A new group's descriptor block k (table index) is block 1 + k (superblock at 0), and must
    // already sit at slot k % addresses-per-block; the reserved ones follow the table in order.
    const expected = new Map<number, number>();
    for (let res = 0; res < geo.reservedGdt; res++) {
      const index = geo.gdtBlocks + res;
      expected.set(index % ADDR_PER_BLOCK, 1 + index);
    }
    for (let slot = 0; slot < ADDR_PER_BLOCK; slot++) {
      assert.equal(dind.readUInt32LE(slot * 4), expected.get(slot) ?? 0, `double-indirect slot ${slot}`);
    }
    // Each reserved block lists its copy in every backup group, in the kernel's order.
    const backups = kernelBackupOrder(geo.groupCount);
    for (const primary of expected.values()) {
      const list = byBlock.get(primary);
      assert.ok(list, `reserved block ${primary} is written`);
      backups.forEach((g, j) =>
        assert.equal(list.readUInt32LE(j * 4), g * BLOCKS_PER_GROUP + primary, `block ${primary}, backup group ${g}`),
      );
      assert.equal(list.readUInt32LE(backups.length * 4), 0, `block ${primary}: nothing after the last backup`);
    }
    assert.equal(r.blocks.length, 1 + geo.reservedGdt);
    assert.equal(r.sectors, (1 + geo.reservedGdt * (1 + backups.length)) * (BLOCK_SIZE / 512));
  });
}
