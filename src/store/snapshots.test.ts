import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore } from './db.js';
import { SnapshotRepo, type SnapshotRow } from './snapshots.js';

const row = (over: Partial<SnapshotRow> = {}): SnapshotRow => ({
  id: 's1',
  name: 'snap1',
  state: 'creating',
  internal: false,
  vmId: 'v1',
  vmName: 'par',
  imageId: 'img1',
  layerId: undefined,
  record: {
    image_id: 'img1',
    kernel: 'k',
    vmm: 'q',
    vcpu: 1,
    memory_mib: 512,
    disk_bytes: 1024,
    overlay_bytes: 2048,
    layout: 'l',
    accel: 'tcg',
  },
  createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
});

test('snapshots: a creating row, finished with its layer in one step; internal ones never name an image user', () => {
  const repo = new SnapshotRepo(openStore(':memory:'));
  repo.insert(row());
  repo.insert(row({ id: 's2', name: 'fork-x', internal: true }));
  assert.equal(repo.byName('snap1')?.state, 'creating');
  assert.deepEqual(repo.layers(), []);
  repo.finish('s1', { id: 's1', format: 'qcow2', backingLayer: undefined, imageId: 'img1', createdAt: 'now' });
  const s = repo.get('s1');
  assert.equal(s?.state, 'ready');
  assert.equal(s?.layerId, 's1');
  assert.deepEqual(s?.record, row().record);
  assert.deepEqual(
    repo.layers().map((l) => [l.id, l.format, l.backingLayer]),
    [['s1', 'qcow2', undefined]],
  );
  assert.deepEqual(repo.namesByImage('img1'), ['snap1']);
  assert.throws(() => repo.insert(row({ id: 's3' })), /UNIQUE/, 'names are unique');
  repo.delete('s1');
  assert.equal(repo.byName('snap1'), undefined);
  assert.ok(repo.layer('s1'), 'the layer outlives its snapshot until collected');
  repo.deleteLayer('s1');
  assert.equal(repo.layer('s1'), undefined);
});
