import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SnapshotRecord } from '../../store/snapshots.js';
import {
  checkRecord,
  deviceLayout,
  layerRefcounts,
  recoverySteps,
  restoreMismatches,
  unreferencedLayers,
  validateSnapshotName,
} from './snapshot-model.js';

const rec: SnapshotRecord = {
  image_id: 'img1',
  kernel: 'k:abc',
  vmm: 'QEMU emulator version 7.2.0:hash',
  vcpu: 2,
  memory_mib: 1024,
  disk_bytes: 8 * 2 ** 30,
  overlay_bytes: 4 * 2 ** 30,
  layout: deviceLayout({ netMode: 'user', accel: 'tcg', modules: true }),
  accel: 'tcg',
};
const same = { imageId: 'img1', kernel: rec.kernel, vmm: rec.vmm, layout: rec.layout, accel: 'tcg' };

test('deviceLayout: the guest-visible disks, network and accelerator', () => {
  for (const [input, want] of [
    [
      { netMode: 'user', accel: 'tcg', modules: true },
      'disks=banger-root:rw,banger-work:rw,banger-modules:ro;net=virtio-user;accel=tcg',
    ],
    [
      { netMode: 'bridge', accel: 'kvm', modules: false },
      'disks=banger-root:rw,banger-work:rw;net=virtio-bridge;accel=kvm',
    ],
  ] as const)
    assert.equal(deviceLayout(input), want);
});

test('restoreMismatches names every difference; none for the same facts', () => {
  const cases: [Partial<typeof same> & Record<string, unknown>, RegExp[]][] = [
    [{}, []],
    [{ vcpu: 2, memory_mib: 1024, disk_bytes: 8 * 2 ** 30 }, []],
    [{ kernel: 'k:def' }, [/kernel differs/]],
    [{ vmm: 'QEMU emulator version 8.0.0:x' }, [/VMM differs \(snapshot: QEMU emulator version 7\.2\.0/]],
    [{ imageId: 'other' }, [/another image/]],
    [{ accel: 'kvm' }, [/accelerator differs/]],
    [{ layout: deviceLayout({ netMode: 'user', accel: 'tcg', modules: false }) }, [/device layout differs/]],
    [{ vcpu: 4 }, [/vcpu 4 was asked for; the snapshot has 2/]],
    [{ memory_mib: 2048, kernel: 'x' }, [/kernel/, /memory 2048 MiB/]],
    [{ disk_bytes: 1 }, [/disk size 1 bytes/]],
  ];
  for (const [diff, want] of cases) {
    const got = restoreMismatches(rec, { ...same, ...diff });
    assert.equal(got.length, want.length, `${JSON.stringify(diff)}: ${got.join('; ')}`);
    want.forEach((re, i) => assert.match(got[i] ?? '', re));
  }
});

test('checkRecord accepts a full record and refuses missing or wrong fields', () => {
  assert.deepEqual(checkRecord(JSON.parse(JSON.stringify(rec))), rec);
  for (const [bad, re] of [
    [null, /not an object/],
    ['x', /not an object/],
    [{ ...rec, kernel: '' }, /kernel/],
    [{ ...rec, vmm: 3 }, /vmm/],
    [{ ...rec, layout: 'x'.repeat(5000) }, /layout/],
    [{ ...rec, vcpu: 0 }, /vcpu/],
    [{ ...rec, memory_mib: 1.5 }, /memory_mib/],
    [{ ...rec, overlay_bytes: undefined }, /overlay_bytes/],
  ] as const)
    assert.throws(() => checkRecord(bad), re);
});

test('validateSnapshotName follows the VM name rules', () => {
  validateSnapshotName('before-upgrade');
  for (const bad of ['', 'A', 'a b', 'x'.repeat(64), 'a/b'])
    assert.throws(() => validateSnapshotName(bad), /invalid snapshot name/);
});

test('layer refcounts: snapshots, VMs and layers backed by it each count once', () => {
  const layers = [
    { id: 'a', backingLayer: undefined },
    { id: 'b', backingLayer: 'a' },
    { id: 'c', backingLayer: undefined },
  ];
  const counts = layerRefcounts(
    layers,
    [{ layerId: 'b' }, { layerId: undefined }],
    [{ layer: 'b' }, { layer: 'zz' }, {}],
  );
  assert.deepEqual(Object.fromEntries(counts), { a: 1, b: 2, c: 0 });
});

test('unreferencedLayers: what nothing stands on, then what only those stood on', () => {
  const chain = [
    { id: 'a', backingLayer: undefined },
    { id: 'b', backingLayer: 'a' },
    { id: 'c', backingLayer: 'b' },
  ];
  const cases: [Parameters<typeof unreferencedLayers>[1], Parameters<typeof unreferencedLayers>[2], string[]][] = [
    // The fork (a VM on c) keeps the whole chain after its parent's snapshot went.
    [[], [{ layer: 'c' }], []],
    // A snapshot on the middle layer keeps it and its backing; the top goes.
    [[{ layerId: 'b' }], [], ['c']],
    // Nothing left: the chain goes top first.
    [[], [{ layer: undefined }], ['c', 'b', 'a']],
    [[{ layerId: 'a' }], [{ layer: 'c' }], []],
  ];
  for (const [snaps, vms, want] of cases) assert.deepEqual(unreferencedLayers(chain, snaps, vms), want);
});

test('recoverySteps: cancel an active save, then cont a guest the snapshot stopped', () => {
  const cases: [string | undefined, string | undefined, string[]][] = [
    ['paused', 'active', ['migrate_cancel', 'cont']],
    ['finish-migrate', 'device', ['migrate_cancel', 'cont']],
    ['postmigrate', 'completed', ['cont']],
    ['paused', 'cancelled', ['cont']],
    ['paused', undefined, ['cont']],
    ['running', 'completed', []],
    ['running', undefined, []],
    ['shutdown', 'failed', []],
    [undefined, undefined, []],
  ];
  for (const [run, mig, want] of cases)
    assert.deepEqual(
      recoverySteps(run, mig).map((s) => s.execute),
      want,
      `${run}/${mig}`,
    );
});
