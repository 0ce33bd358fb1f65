import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../test/fakes/runner.js';
import { selectVmmDriver } from './drivers.js';

const bins = { qemuBin: 'qemu-system-x86_64', firecrackerBin: 'firecracker' };

test('selectVmmDriver: qemu selects the qemu driver', () => {
  assert.equal(selectVmmDriver('qemu', bins, new FakeRunner(), { accel: 'tcg' }).kind, 'qemu');
});

test('selectVmmDriver: firecracker selects the firecracker driver, which declares KVM and bridge networking', () => {
  const d = selectVmmDriver('firecracker', bins, new FakeRunner(), { accel: 'tcg' });
  assert.equal(d.kind, 'firecracker');
  assert.equal(d.capabilities.needsKvm, true);
  assert.ok(!d.capabilities.networks.some((n) => n.mode === 'user'));
});
