import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../../errors.js';
import type { DiskSpec, VmmSpec } from '../driver.js';
import {
  diskArgsByDevice,
  firecrackerDiskDevices,
  firecrackerPlan,
  virtioBlockName,
  type FirecrackerExtra,
} from './config.js';

const disks: DiskSpec[] = [
  { id: 'root', path: '/v/root.ext4', format: 'raw', readonly: false, serial: 'banger-root' },
  { id: 'work', path: '/v/work.ext4', format: 'raw', readonly: false, serial: 'banger-work' },
  { id: 'modules', path: '/k/modules.ext4', format: 'raw', readonly: true, serial: 'banger-modules' },
];

/** A spec on bridge networking, which VmmSpec does not spell yet. */
const bridgeNet = (mac = '06:00:ac:10:00:02'): VmmSpec['net'] =>
  ({ mode: 'bridge', sshPort: 22, allowOutbound: true, mac }) as unknown as VmmSpec['net'];

const spec = (over: Partial<VmmSpec> = {}): VmmSpec => ({
  id: 'abc',
  name: 'dev',
  vcpu: 2,
  memoryMib: 1024,
  accel: 'kvm',
  kernelPath: '/k/vmlinux',
  initrdPath: '/k/initrd.img',
  cmdline: 'console=ttyS0 reboot=k panic=1',
  disks,
  net: bridgeNet(),
  consoleLog: '/v/console.log',
  controlSocket: '/r/abc.sock',
  vmmLog: '/v/vmm.log',
  ...over,
});

const extra = (over: Partial<FirecrackerExtra> = {}): FirecrackerExtra => ({
  tap: 'fc-tap0',
  logPath: '/v/vmm.log',
  ...over,
});

test('firecracker plan: exact bodies in order, InstanceStart last', () => {
  assert.deepEqual(firecrackerPlan(spec(), extra()), [
    {
      method: 'PUT',
      path: '/logger',
      body: { log_path: '/v/vmm.log', level: 'Info', show_level: true, show_log_origin: false },
    },
    { method: 'PUT', path: '/machine-config', body: { vcpu_count: 2, mem_size_mib: 1024, smt: false } },
    {
      method: 'PUT',
      path: '/boot-source',
      body: {
        kernel_image_path: '/k/vmlinux',
        boot_args: 'console=ttyS0 reboot=k panic=1',
        initrd_path: '/k/initrd.img',
      },
    },
    {
      method: 'PUT',
      path: '/drives/root',
      body: { drive_id: 'root', path_on_host: '/v/root.ext4', is_root_device: true, is_read_only: false },
    },
    {
      method: 'PUT',
      path: '/drives/work',
      body: { drive_id: 'work', path_on_host: '/v/work.ext4', is_root_device: false, is_read_only: false },
    },
    {
      method: 'PUT',
      path: '/drives/modules',
      body: { drive_id: 'modules', path_on_host: '/k/modules.ext4', is_root_device: false, is_read_only: true },
    },
    {
      method: 'PUT',
      path: '/network-interfaces/eth0',
      body: { iface_id: 'eth0', host_dev_name: 'fc-tap0', guest_mac: '06:00:ac:10:00:02' },
    },
    { method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } },
  ]);
});

test('firecracker plan: optional parts (metrics, vsock, no initrd, log level)', () => {
  const cases: {
    name: string;
    spec: VmmSpec;
    extra: FirecrackerExtra;
    paths: string[];
    check?: (p: ReturnType<typeof firecrackerPlan>) => void;
  }[] = [
    {
      name: 'metrics and vsock',
      spec: spec(),
      extra: extra({ metricsPath: '/v/metrics', vsock: { udsPath: '/r/abc.vsock', guestCid: 3 }, logLevel: 'Warning' }),
      paths: [
        '/logger',
        '/metrics',
        '/machine-config',
        '/boot-source',
        '/drives/root',
        '/drives/work',
        '/drives/modules',
        '/network-interfaces/eth0',
        '/vsock',
        '/actions',
      ],
      check: (p) => {
        assert.deepEqual(p[1]?.body, { metrics_path: '/v/metrics' });
        assert.deepEqual(p[8]?.body, { guest_cid: 3, uds_path: '/r/abc.vsock' });
        assert.equal((p[0]?.body as { level: string }).level, 'Warning');
      },
    },
    {
      name: 'no initrd, one disk',
      spec: spec({ initrdPath: undefined, disks: disks.slice(0, 1) }),
      extra: extra(),
      paths: ['/logger', '/machine-config', '/boot-source', '/drives/root', '/network-interfaces/eth0', '/actions'],
      check: (p) =>
        assert.deepEqual(p[2]?.body, { kernel_image_path: '/k/vmlinux', boot_args: 'console=ttyS0 reboot=k panic=1' }),
    },
    {
      name: 'root listed last still goes first',
      spec: spec({ disks: [disks[1] as DiskSpec, disks[2] as DiskSpec, disks[0] as DiskSpec] }),
      extra: extra(),
      paths: [
        '/logger',
        '/machine-config',
        '/boot-source',
        '/drives/root',
        '/drives/work',
        '/drives/modules',
        '/network-interfaces/eth0',
        '/actions',
      ],
    },
  ];
  for (const c of cases) {
    const plan = firecrackerPlan(c.spec, c.extra);
    assert.deepEqual(
      plan.map((s) => s.path),
      c.paths,
      c.name,
    );
    assert.ok(
      plan.every((s) => s.method === 'PUT'),
      c.name,
    );
    c.check?.(plan);
  }
});

test('firecracker plan: refusals are preconditions with hints', () => {
  const cases: { name: string; spec: VmmSpec; extra?: FirecrackerExtra; message: RegExp; hint?: RegExp }[] = [
    {
      name: 'user networking',
      spec: spec({ net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:ab:cd:ef' } }),
      message: /^firecracker needs bridge networking \(a tap device\)$/,
      hint: /network_mode = "bridge"/,
    },
    { name: 'no tap', spec: spec(), extra: extra({ tap: undefined }), message: /no tap device/ },
    {
      name: 'tap name too long',
      spec: spec(),
      extra: extra({ tap: 'a-very-long-tap-name' }),
      message: /longer than 15/,
    },
    { name: 'tcg', spec: spec({ accel: 'tcg' }), message: /software emulation/, hint: /vmm = "qemu"/ },
    {
      name: 'qcow2 disk',
      spec: spec({ disks: [{ ...(disks[0] as DiskSpec), format: 'qcow2' }] }),
      message: /it is qcow2.*raw images only/,
      hint: /raw/,
    },
    {
      name: 'bad drive id',
      spec: spec({ disks: [{ ...(disks[0] as DiskSpec), id: 'root-disk' }] }),
      message: /not a valid firecracker drive id/,
    },
    { name: 'too many vcpus', spec: spec({ vcpu: 33 }), message: /1 to 32 vCPUs/ },
    { name: 'zero memory', spec: spec({ memoryMib: 0 }), message: /MiB/ },
    { name: 'long cmdline', spec: spec({ cmdline: 'x'.repeat(2048) }), message: /at most 2047/ },
    { name: 'non-ascii cmdline', spec: spec({ cmdline: 'name=café' }), message: /printable ASCII/ },
    {
      name: 'reserved vsock cid',
      spec: spec(),
      extra: extra({ vsock: { udsPath: '/r/v', guestCid: 2 } }),
      message: /CID 2/,
    },
  ];
  for (const c of cases) {
    assert.throws(
      () => firecrackerPlan(c.spec, c.extra ?? extra()),
      (e: unknown) => {
        assert.ok(isAppError(e), c.name);
        assert.equal(e.code, 'precondition', c.name);
        assert.match(e.message, c.message, c.name);
        if (c.hint) assert.match(e.hint ?? '', c.hint, c.name);
        return true;
      },
      c.name,
    );
  }
});

test('firecracker disk devices: root is /dev/vda, the rest follow in spec order', () => {
  assert.deepEqual(firecrackerDiskDevices(disks), [
    { id: 'root', device: '/dev/vda' },
    { id: 'work', device: '/dev/vdb' },
    { id: 'modules', device: '/dev/vdc' },
  ]);
  assert.deepEqual(firecrackerDiskDevices([disks[2] as DiskSpec, disks[0] as DiskSpec]), [
    { id: 'root', device: '/dev/vda' },
    { id: 'modules', device: '/dev/vdb' },
  ]);
  assert.deepEqual(firecrackerDiskDevices([]), []);
  for (const [n, name] of [
    [0, '/dev/vda'],
    [25, '/dev/vdz'],
    [26, '/dev/vdaa'],
    [27, '/dev/vdab'],
    [51, '/dev/vdaz'],
    [52, '/dev/vdba'],
    [701, '/dev/vdzz'],
    [702, '/dev/vdaaa'],
  ] as const) {
    assert.equal(virtioBlockName(n), name, String(n));
  }
});

test('firecracker finds disks by order: banger.*=<serial> becomes the device firecracker attaches the disk as', () => {
  const base = 'console=ttyS0 rw';
  const cases: { name: string; cmdline: string; disks: DiskSpec[]; want: string }[] = [
    {
      name: 'root, work, modules',
      cmdline: `${base} banger.root=banger-root banger.work=banger-work banger.hostname=dev banger.modules=banger-modules`,
      disks,
      want: `${base} banger.root=/dev/vda banger.work=/dev/vdb banger.hostname=dev banger.modules=/dev/vdc`,
    },
    {
      name: 'root listed last still leads',
      cmdline: 'banger.work=banger-work banger.root=banger-root',
      disks: [disks[1]!, disks[0]!],
      want: 'banger.work=/dev/vdb banger.root=/dev/vda',
    },
    {
      name: 'no modules disk: its parameter is left alone',
      cmdline: 'banger.root=banger-root banger.modules=banger-modules',
      disks: disks.slice(0, 2),
      want: 'banger.root=/dev/vda banger.modules=banger-modules',
    },
    {
      name: 'only banger.* parameters, only exact serial values',
      cmdline: 'root=banger-root banger.hostname=banger-rootx banger.x',
      disks,
      want: 'root=banger-root banger.hostname=banger-rootx banger.x',
    },
  ];
  for (const c of cases) assert.equal(diskArgsByDevice(c.cmdline, c.disks), c.want, c.name);
});

test('firecracker plan: the boot args name disks by device and drives go root first (is_root_device)', () => {
  const p = firecrackerPlan(
    spec({ cmdline: 'rw banger.root=banger-root banger.work=banger-work banger.modules=banger-modules' }),
    extra(),
  );
  const boot = p.find((c) => c.path === '/boot-source')?.body as { boot_args: string };
  assert.equal(boot.boot_args, 'rw banger.root=/dev/vda banger.work=/dev/vdb banger.modules=/dev/vdc');
  const drives = p
    .filter((c) => c.path.startsWith('/drives/'))
    .map((c) => c.body as { drive_id: string; is_root_device: boolean });
  assert.deepEqual(
    drives.map((d) => [d.drive_id, d.is_root_device]),
    [
      ['root', true],
      ['work', false],
      ['modules', false],
    ],
  );
});
