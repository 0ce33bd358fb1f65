import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { parseCpioNewc } from './cpio.js';
import { buildInitramfs } from './initramfs.js';

test('the initramfs lists init, the module list, the modules and /dev/console in newc format', () => {
  const gz = buildInitramfs({
    release: '6.1.0-56-cloud-amd64',
    init: Buffer.from('\x7fELF-fake'),
    modules: [
      { path: 'kernel/drivers/virtio/virtio_ring.ko', data: Buffer.from('ring') },
      { path: 'kernel/drivers/block/virtio_blk.ko', data: Buffer.from('blk') },
    ],
  });
  const archive = gunzipSync(gz);
  assert.equal(archive.subarray(0, 6).toString(), '070701');
  const entries = parseCpioNewc(archive);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const init = byPath.get('init');
  assert.ok(init);
  assert.equal(init.mode, 0o100755);
  const con = byPath.get('dev/console');
  assert.equal(con?.mode, 0o020600);
  assert.deepEqual([con?.major, con?.minor], [5, 1]);
  for (const d of ['dev', 'proc', 'sys', 'newroot', 'lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/block']) {
    assert.equal(byPath.get(d)?.mode, 0o040755, d);
  }
  const list = entries.find((e) => e.path === 'etc/banger-modules');
  assert.ok(list);
  const start = archive.indexOf('/lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko\n');
  assert.ok(start > 0, 'module list holds absolute paths in load order');
  const order = archive
    .subarray(start, start + list.size)
    .toString()
    .trim()
    .split('\n');
  assert.deepEqual(order, [
    '/lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko',
    '/lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/block/virtio_blk.ko',
  ]);
  // Every parent directory precedes its children.
  const seen = new Set<string>();
  for (const e of entries) {
    const parent = e.path.split('/').slice(0, -1).join('/');
    if (parent) assert.ok(seen.has(parent), `${parent} before ${e.path}`);
    seen.add(e.path);
  }
});
