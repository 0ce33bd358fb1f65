import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideVmm, type VmmFacts } from './choice.js';

const usable: VmmFacts = {
  want: 'auto',
  networkMode: 'bridge',
  firecracker: { bin: 'firecracker', path: '/usr/bin/firecracker', versionText: 'Firecracker v1.7.0\n' },
  accel: { accel: 'kvm', reason: '/dev/kvm is usable' },
  kernel: { name: 'fc', format: 'elf', traits: { virtioMmio: 'builtin' }, hasInitrd: false },
  defaultKernelName: 'fc',
};

test('decideVmm: auto picks firecracker only when every fact allows it, else qemu with the first blocker', () => {
  const rows: [string, Partial<VmmFacts>, 'qemu' | 'firecracker', RegExp][] = [
    ['all usable', {}, 'firecracker', /^firecracker 1\.7\.0, KVM and kernel "fc" are usable$/],
    [
      'no binary',
      { firecracker: { bin: 'firecracker', path: undefined, versionText: undefined } },
      'qemu',
      /^firecracker: binary not found \(firecracker_bin = "firecracker"\)$/,
    ],
    [
      '--version fails',
      { firecracker: { bin: 'fc', path: '/x/fc', versionText: undefined } },
      'qemu',
      /^firecracker: `\/x\/fc --version` did not run$/,
    ],
    [
      'too old',
      { firecracker: { bin: 'fc', path: '/x/fc', versionText: 'Firecracker v1.4.1' } },
      'qemu',
      /^firecracker: firecracker 1\.4\.1 is too old; banger needs 1\.5\.0 or later$/,
    ],
    [
      'exactly 1.5.0',
      { firecracker: { bin: 'fc', path: '/x/fc', versionText: 'Firecracker v1.5.0' } },
      'firecracker',
      /^firecracker 1\.5\.0/,
    ],
    [
      'no KVM',
      { accel: { accel: 'tcg', reason: '/dev/kvm is missing' } },
      'qemu',
      /^firecracker: no usable KVM \(\/dev\/kvm is missing\)$/,
    ],
    ['user network', { networkMode: 'user' }, 'qemu', /^firecracker: needs network_mode = "bridge"$/],
    ['kernel not pulled', { kernel: undefined }, 'qemu', /^firecracker: default kernel "fc" is not pulled yet$/],
    [
      'bzImage kernel',
      { kernel: { name: 'k', format: 'bzImage', traits: { virtioMmio: 'builtin' }, hasInitrd: true } },
      'qemu',
      /^firecracker: cannot boot kernel "k": it is a bzImage$/,
    ],
    [
      'virtio-mmio module without initrd',
      { kernel: { name: 'k', format: 'elf', traits: { virtioMmio: 'module' }, hasInitrd: false } },
      'qemu',
      /virtio-mmio is a module and there is no initrd/,
    ],
    [
      'virtio-mmio absent',
      { kernel: { name: 'k', format: 'elf', traits: { virtioMmio: 'absent' }, hasInitrd: true } },
      'qemu',
      /no virtio-mmio driver/,
    ],
    [
      'virtio-mmio unknown',
      { kernel: { name: 'k', format: 'elf', traits: {}, hasInitrd: false } },
      'qemu',
      /^firecracker: cannot tell whether kernel "k" has virtio-mmio built in$/,
    ],
    ['qemu asked for', { want: 'qemu' }, 'qemu', /^vmm = "qemu" in config$/],
    [
      'firecracker asked for (its own checks refuse later)',
      { want: 'firecracker', accel: { accel: 'tcg', reason: 'x' } },
      'firecracker',
      /^vmm = "firecracker" in config$/,
    ],
  ];
  for (const [what, patch, vmm, reason] of rows) {
    const got = decideVmm({ ...usable, ...patch });
    assert.equal(got.vmm, vmm, what);
    assert.match(got.reason, reason, what);
  }
});
