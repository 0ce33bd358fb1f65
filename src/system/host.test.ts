import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideAccel, parseCpuInfo } from './host.js';
import { parseStatStartTime } from './process.js';

const AMD_NO_VIRT = `processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 2096.011
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge
bogomips\t: 4192.02

processor\t: 1
flags\t\t: fpu vmx
`;
const INTEL_VIRT = `processor\t: 0
model name\t: Intel(R) Xeon(R)
cpu MHz\t\t: 3000.000
flags\t\t: fpu vme vmx ept
`;

test('cpuinfo parsing (first processor decides)', () => {
  assert.deepEqual(parseCpuInfo(AMD_NO_VIRT), { hasVirt: false, tscKhz: 2096011, modelName: 'AMD EPYC' });
  assert.deepEqual(parseCpuInfo(INTEL_VIRT), { hasVirt: true, tscKhz: 3000000, modelName: 'Intel(R) Xeon(R)' });
  assert.deepEqual(parseCpuInfo(''), { hasVirt: false, tscKhz: undefined, modelName: undefined });
});

test('acceleration decision', () => {
  const virt = parseCpuInfo(INTEL_VIRT);
  const none = parseCpuInfo(AMD_NO_VIRT);
  const cases: [Parameters<typeof decideAccel>, 'kvm' | 'tcg', RegExp][] = [
    [['auto', true, virt], 'kvm', /usable/],
    [['auto', false, virt], 'tcg', /\/dev\/kvm/],
    [['auto', true, none], 'tcg', /neither vmx nor svm/],
    [['tcg', true, virt], 'tcg', /config/],
    [['kvm', false, none], 'kvm', /config/],
  ];
  for (const [args, accel, reason] of cases) {
    const d = decideAccel(...args);
    assert.equal(d.accel, accel);
    assert.match(d.reason, reason);
  }
});

test('/proc/<pid>/stat start time survives spaces and parens in the command name', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  const stat = (comm: string): string => `1234 (${comm}) ${['S', ...fields.slice(1)].join(' ')}`;
  // field 22 is the 20th field after the command name (fields start at 3).
  assert.equal(parseStatStartTime(stat('qemu-system-x86')), 22);
  assert.equal(parseStatStartTime(stat('a b) (c')), 22);
  assert.equal(parseStatStartTime('garbage'), undefined);
});
