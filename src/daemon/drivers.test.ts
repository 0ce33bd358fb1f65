import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../test/fakes/runner.js';
import { selectVmmDriver } from './drivers.js';

test('selectVmmDriver: auto and qemu select the qemu driver', () => {
  for (const vmm of ['auto', 'qemu'] as const) {
    assert.equal(selectVmmDriver({ vmm, qemuBin: 'qemu-system-x86_64' }, new FakeRunner()).kind, 'qemu', vmm);
  }
});

test('selectVmmDriver: firecracker is not wired yet, so VMs that exist stay with the qemu driver', () => {
  // The VM service refuses new firecracker VMs (service.test.ts); until issue 14 wires the
  // FirecrackerDriver, the daemon still needs a driver that can adopt and stop qemu VMs.
  assert.equal(selectVmmDriver({ vmm: 'firecracker', qemuBin: 'qemu-system-x86_64' }, new FakeRunner()).kind, 'qemu');
});
