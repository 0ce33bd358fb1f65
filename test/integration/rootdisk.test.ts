/**
 * Integration (no network): the raw root-disk strategies on real filesystems.
 * Reflink on a loop-mounted XFS made here (root only); a filesystem without
 * reflink falls through to a sparse copy. Device-mapper does not exist on
 * these hosts: that plan is unit-tested with the fake runner (rootdisk.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { makeRootDisk } from '../../src/services/vm/rootdisk.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import { sh } from '../helpers/home.js';
import { missingRoot, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingRoot('to loop-mount XFS and tmpfs'), ...missingTools(['mkfs.xfs', 'mount', 'umount'])],
  'run as root; apt install xfsprogs',
);

let dir: string;
let mnt: string;

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'banger-xfs-'));
  mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  assert.equal(sh(['truncate', '-s', '1G', join(dir, 'xfs.img')]).code, 0);
  assert.equal(sh(['mkfs.xfs', '-q', '-m', 'reflink=1', join(dir, 'xfs.img')]).code, 0);
  const m = sh(['mount', '-o', 'loop', join(dir, 'xfs.img'), mnt]);
  assert.equal(m.code, 0, m.stderr);
});

after(() => {
  if (skip) return;
  sh(['umount', mnt]);
  rmSync(dir, { recursive: true, force: true });
});

const used = (path: string): number => Number(sh(['df', '--output=used', '-B1', path]).stdout.split('\n')[1]);

test('reflink strategy on a reflink-capable XFS', { skip }, async () => {
  const base = join(mnt, 'rootfs.ext4');
  writeFileSync(base, randomBytes(64 << 20));
  sh(['sync']);
  const before = used(mnt);
  const { plan } = await makeRootDisk(new NodeRunner(), { base, dir: mnt, sizeBytes: 256 << 20, vmId: 'x1' }, [
    'reflink',
    'sparse-copy',
  ]);
  sh(['sync']);
  assert.equal(plan.strategy, 'reflink');
  assert.equal(statSync(join(mnt, 'root.raw')).size, 256 << 20);
  assert.ok(used(mnt) - before < 16 << 20, `no full copy: ${used(mnt) - before} bytes more used`);
  assert.deepEqual(readFileSync(join(mnt, 'root.raw')).subarray(0, 1 << 20), readFileSync(base).subarray(0, 1 << 20));
});

test('without reflink support the strategy falls through to a sparse copy', { skip }, async () => {
  const d = mkdtempSync(join(dir, 'plain-'));
  const base = join(d, 'rootfs.ext4');
  writeFileSync(base, randomBytes(1 << 20));
  const tmpfs = join(d, 'tmpfs');
  mkdirSync(tmpfs);
  assert.equal(sh(['mount', '-t', 'tmpfs', '-o', 'size=64M', 'tmpfs', tmpfs]).code, 0);
  try {
    const { plan } = await makeRootDisk(new NodeRunner(), { base, dir: tmpfs, sizeBytes: 8 << 20, vmId: 'x2' }, [
      'reflink',
      'sparse-copy',
    ]);
    assert.equal(plan.strategy, 'sparse-copy');
    assert.equal(statSync(join(tmpfs, 'root.raw')).size, 8 << 20);
  } finally {
    sh(['umount', tmpfs]);
  }
});
