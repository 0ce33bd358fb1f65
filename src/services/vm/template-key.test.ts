import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qemuArgv } from '../../vmm/qemu/argv.js';
import type { VmmSpec } from '../../vmm/driver.js';
import { templateKey, vmmShape, type TemplateKeyInput } from './template-key.js';

const base: TemplateKeyInput = {
  banger: '0.1.0+abc',
  imageId: 'img1',
  rootfs: '1000:1700000000000',
  assetsVersion: 5,
  kernel: 'debian-cloud:1234',
  qemu: 'QEMU 7.2.22:ffee',
  sshKey: 'aa11',
  overlayBytes: 8 * 2 ** 30,
  diskBytes: 8 * 2 ** 30,
  shape: ['-M=microvm', '-smp=1', '-m=1024M'],
};

test('template key: stable for one input, different when any covered field changes', () => {
  assert.equal(templateKey(base), templateKey({ ...base }));
  assert.match(templateKey(base), /^[0-9a-f]{48}$/);
  const changes: [string, Partial<TemplateKeyInput>][] = [
    ['banger build', { banger: '0.1.0+abd' }],
    ['image', { imageId: 'img2' }],
    ['rootfs (image refresh)', { rootfs: '1000:1700000000001' }],
    ['guest assets', { assetsVersion: 6 }],
    ['kernel build', { kernel: 'debian-cloud:1235' }],
    ['qemu build', { qemu: 'QEMU 7.2.22:ffef' }],
    ['ssh key', { sshKey: 'aa12' }],
    ['overlay size', { overlayBytes: 4 * 2 ** 30 }],
    ['disk size', { diskBytes: 4 * 2 ** 30 }],
    ['vcpu', { shape: ['-M=microvm', '-smp=2', '-m=1024M'] }],
    ['device order', { shape: ['-M=microvm', '-m=1024M', '-smp=1'] }],
  ];
  const seen = new Set([templateKey(base)]);
  for (const [name, over] of changes) {
    const k = templateKey({ ...base, ...over });
    assert.ok(!seen.has(k), name);
    seen.add(k);
  }
});

const spec = (over: Partial<VmmSpec> = {}): VmmSpec => ({
  id: 'abc',
  name: 'dev',
  vcpu: 2,
  memoryMib: 1024,
  accel: 'tcg',
  kernelPath: '/k/bzImage',
  initrdPath: '/k/initrd.img',
  cmdline: 'console=ttyS0 banger.hostname=dev',
  disks: [
    { id: 'root', path: '/v/a/root.qcow2', format: 'qcow2', readonly: false, serial: 'banger-root' },
    { id: 'work', path: '/v/a/work', format: 'raw', readonly: false, serial: 'banger-work' },
  ],
  net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:ab:cd:ef' },
  consoleLog: '/v/a/console.log',
  controlSocket: '/r/abc.qmp',
  vmmLog: '/v/a/vmm.log',
  agentSocket: '/r/abc.agent',
  ...over,
});

test('vmm shape: per-VM paths, ports, names, MAC and cmdline do not count; machine and devices do', () => {
  const shape = (o: Partial<VmmSpec> = {}): string[] => vmmShape(qemuArgv('qemu', spec(o)));
  const same: [string, Partial<VmmSpec>][] = [
    ['name', { name: 'other', id: 'def' }],
    ['cmdline', { cmdline: 'console=ttyS0 banger.hostname=other' }],
    ['paths', { consoleLog: '/v/b/console.log', controlSocket: '/r/def.qmp', vmmLog: '/v/b/vmm.log' }],
    ['ssh port and mac', { net: { mode: 'user', sshPort: 40023, allowOutbound: true, mac: '52:54:00:00:00:01' } }],
    ['agent socket path', { agentSocket: '/r/def.agent' }],
  ];
  // The memory file's path is per VM (a copy), its presence is not.
  assert.deepEqual(shape({ memoryFile: '/dev/shm/b/a.ram' }), shape({ memoryFile: '/t/x,,y/ram.bin' }), 'ram path');
  for (const [name, o] of same) assert.deepEqual(shape(o), shape(), name);
  const differ: [string, Partial<VmmSpec>][] = [
    ['vcpu', { vcpu: 1 }],
    ['memory', { memoryMib: 2048 }],
    ['accel', { accel: 'kvm' }],
    ['no agent channel', { agentSocket: undefined }],
    ['network type', { net: { mode: 'bridge', tap: 'tap0', mac: '52:54:00:ab:cd:ef' } }],
    ['disk order', { disks: [...spec().disks].reverse() }],
    ['disk format', { disks: spec().disks.map((d) => ({ ...d, format: 'raw' as const })) }],
    ['memory from a file', { memoryFile: '/t/ram.bin' }],
  ];
  for (const [name, o] of differ) assert.notDeepEqual(shape(o), shape(), name);
});
