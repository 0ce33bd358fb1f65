import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmmSpec } from '../driver.js';
import { QEMU_CAPABILITIES, qemuArgv, USER_NET } from './argv.js';

const spec = (over: Partial<VmmSpec> = {}): VmmSpec => ({
  id: 'abc',
  name: 'dev',
  vcpu: 2,
  memoryMib: 1024,
  accel: 'tcg',
  kernelPath: '/k/bzImage',
  initrdPath: '/k/initrd.img',
  cmdline: 'console=ttyS0',
  disks: [
    { id: 'root', path: '/v/root.qcow2', format: 'qcow2', readonly: false, serial: 'banger-root' },
    { id: 'modules', path: '/k/modules.ext4', format: 'raw', readonly: true, serial: 'banger-modules' },
  ],
  net: { mode: 'user', sshPort: 40022, allowOutbound: false, mac: '52:54:00:ab:cd:ef' },
  consoleLog: '/v/console.log',
  controlSocket: '/r/abc.qmp',
  vmmLog: '/v/vmm.log',
  ...over,
});

/** The value following a flag, for each occurrence. */
const values = (argv: string[], flag: string): string[] =>
  argv.flatMap((a, i) => (a === flag ? [argv[i + 1] as string] : []));

test('qemu argv: microvm, accel and cpu per acceleration', () => {
  const cases: { accel: 'kvm' | 'tcg'; accelArg: string; cpu: string }[] = [
    { accel: 'tcg', accelArg: 'tcg,thread=multi', cpu: 'max' },
    { accel: 'kvm', accelArg: 'kvm', cpu: 'host' },
  ];
  for (const c of cases) {
    const argv = qemuArgv('qemu-system-x86_64', spec({ accel: c.accel }));
    assert.equal(argv[0], 'qemu-system-x86_64');
    assert.deepEqual(values(argv, '-accel'), [c.accelArg]);
    assert.deepEqual(values(argv, '-cpu'), [c.cpu]);
    assert.match(values(argv, '-M')[0] ?? '', /^microvm/);
    assert.ok(argv.includes('-no-reboot'), 'guest halt ends the VMM');
    assert.ok(argv.includes('-nodefaults'));
  }
});

test('qemu argv: disks carry serials, read-only flag and format', () => {
  const argv = qemuArgv('q', spec());
  assert.deepEqual(values(argv, '-drive'), [
    'id=root,file=/v/root.qcow2,format=qcow2,if=none,discard=unmap',
    'id=modules,file=/k/modules.ext4,format=raw,if=none,discard=unmap,readonly=on',
  ]);
  assert.deepEqual(values(argv, '-device').slice(0, 2), [
    'virtio-blk-device,drive=root,serial=banger-root',
    'virtio-blk-device,drive=modules,serial=banger-modules',
  ]);
});

test('qemu argv: user network is restricted unless outbound is allowed; ssh on loopback only', () => {
  for (const [allow, restrict] of [
    [false, 'on'],
    [true, 'off'],
  ] as const) {
    const argv = qemuArgv(
      'q',
      spec({ net: { mode: 'user', sshPort: 40022, allowOutbound: allow, mac: '52:54:00:ab:cd:ef' } }),
    );
    assert.deepEqual(values(argv, '-netdev'), [`user,id=net0,restrict=${restrict},hostfwd=tcp:127.0.0.1:40022-:22`]);
    assert.ok(values(argv, '-device').includes('virtio-net-device,netdev=net0,mac=52:54:00:ab:cd:ef'));
  }
});

test('qemu argv: bridge network opens the given tap (no scripts, no forwarding) on a virtio-net device', () => {
  const argv = qemuArgv('q', spec({ net: { mode: 'bridge', tap: 'tap-0123456789a', mac: '52:54:00:ab:cd:ef' } }));
  assert.deepEqual(values(argv, '-netdev'), ['tap,id=net0,ifname=tap-0123456789a,script=no,downscript=no']);
  assert.ok(values(argv, '-device').includes('virtio-net-device,netdev=net0,mac=52:54:00:ab:cd:ef'));
  assert.ok(!argv.some((a) => a.includes('hostfwd')));
  assert.ok(QEMU_CAPABILITIES.networks.some((n) => n.mode === 'bridge'));
});

test('qemu argv: kernel, initrd, cmdline, console file and QMP socket', () => {
  const argv = qemuArgv('q', spec());
  assert.deepEqual(values(argv, '-kernel'), ['/k/bzImage']);
  assert.deepEqual(values(argv, '-initrd'), ['/k/initrd.img']);
  assert.deepEqual(values(argv, '-append'), ['console=ttyS0']);
  assert.deepEqual(values(argv, '-qmp'), ['unix:/r/abc.qmp,server=on,wait=off']);
  assert.deepEqual(values(qemuArgv('q', spec({ initrdPath: undefined })), '-initrd'), []);
});

test('qemu argv: the console log is opened for appending, so the daemon can truncate it under a running VM', () => {
  assert.deepEqual(values(qemuArgv('qemu-system-x86_64', spec()), '-chardev'), [
    'file,id=console,path=/v/console.log,append=on',
  ]);
});

test('qemu argv: paths inside option strings have their commas doubled', () => {
  const dir = '/state/a b,c';
  const argv = qemuArgv(
    'q',
    spec({
      kernelPath: `${dir}/bzImage`,
      initrdPath: `${dir}/initrd,img`,
      disks: [{ id: 'root', path: `${dir}/vms/x/root.qcow2`, format: 'qcow2', readonly: false, serial: 'banger-root' }],
      consoleLog: `${dir}/console,,log`,
      controlSocket: '/run/a,b/abc.qmp',
    }),
  );
  assert.deepEqual(values(argv, '-drive'), [
    'id=root,file=/state/a b,,c/vms/x/root.qcow2,format=qcow2,if=none,discard=unmap',
  ]);
  assert.deepEqual(values(argv, '-chardev'), ['file,id=console,path=/state/a b,,c/console,,,,log,append=on']);
  assert.deepEqual(values(argv, '-qmp'), ['unix:/run/a,,b/abc.qmp,server=on,wait=off']);
  // -kernel and -initrd take a plain file name.
  assert.deepEqual(values(argv, '-kernel'), ['/state/a b,c/bzImage']);
  assert.deepEqual(values(argv, '-initrd'), ['/state/a b,c/initrd,img']);
});

test("qemu's declared control socket is spotted on its own argv only, commas in the path included", () => {
  const carried = QEMU_CAPABILITIES.controlSocket.carriedBy;
  for (const sock of ['/r/abc.qmp', '/r/a b,c/abc.qmp']) {
    assert.equal(carried(qemuArgv('qemu-system-x86_64', spec({ controlSocket: sock })), sock), true, sock);
    assert.equal(carried(['tail', '-f', sock], sock), false, `${sock}: a bystander naming the path`);
    assert.equal(
      carried(qemuArgv('qemu-system-x86_64', spec({ controlSocket: `${sock}x` })), sock),
      false,
      `${sock}: another VM's socket`,
    );
  }
  assert.equal(QEMU_CAPABILITIES.controlSocket.suffix, '.qmp');
  assert.deepEqual(QEMU_CAPABILITIES.networks[0]?.addresses, USER_NET);
});

test('qemu argv: the guest agent channel is a virtserialport org.banger.agent on virtio-mmio, bridged to a Unix socket', () => {
  const cases: { name: string; agentSocket: string | undefined; devices: string[]; chardevs: string[] }[] = [
    {
      name: 'with an agent socket',
      agentSocket: '/r/abc.agent',
      devices: ['virtio-serial-device,id=vser0', 'virtserialport,bus=vser0.0,chardev=agent,name=org.banger.agent'],
      chardevs: ['socket,id=agent,path=/r/abc.agent,server=on,wait=off'],
    },
    {
      name: 'a comma in the socket path is doubled',
      agentSocket: '/run/a,b/abc.agent',
      devices: ['virtio-serial-device,id=vser0', 'virtserialport,bus=vser0.0,chardev=agent,name=org.banger.agent'],
      chardevs: ['socket,id=agent,path=/run/a,,b/abc.agent,server=on,wait=off'],
    },
    { name: 'without one', agentSocket: undefined, devices: [], chardevs: [] },
  ];
  for (const c of cases) {
    const argv = qemuArgv('q', spec({ agentSocket: c.agentSocket }));
    const devices = values(argv, '-device').filter((d) => /^virt(io-serial|serialport)/.test(d));
    assert.deepEqual(devices, c.devices, c.name);
    assert.deepEqual(values(argv, '-chardev').slice(1), c.chardevs, c.name);
    // The port's device comes after its bus, and the chardev exists before the port names it.
    if (c.agentSocket !== undefined) {
      const at = (s: string): number => argv.findIndex((a) => a.startsWith(s));
      assert.ok(at('virtio-serial-device') < at('virtserialport'), c.name);
      assert.ok(at('socket,id=agent') < at('virtserialport'), c.name);
    }
  }
});

test('qemu argv: a restore waits with -incoming defer; a cold boot has no -incoming; the devices are the same', () => {
  const cases = [
    { name: 'restore', incoming: true, want: ['defer'] },
    { name: 'cold', incoming: false, want: [] },
    { name: 'unset', incoming: undefined, want: [] },
  ];
  for (const c of cases) {
    const argv = qemuArgv('q', spec({ incoming: c.incoming }));
    assert.deepEqual(values(argv, '-incoming'), c.want, c.name);
    assert.deepEqual(values(argv, '-device'), values(qemuArgv('q', spec()), '-device'), c.name);
  }
});

test('qemu argv: guest RAM from a file is a shared memory backend named as the anonymous one', () => {
  const cases = [
    { name: 'anonymous', memoryFile: undefined, objects: [], machine: [] },
    {
      name: 'file',
      memoryFile: '/dev/shm/banger-ram-1',
      objects: [
        'memory-backend-file,id=microvm.ram,size=1024M,mem-path=/dev/shm/banger-ram-1,share=on,x-use-canonical-path-for-ramblock-id=off',
      ],
      machine: ['memory-backend=microvm.ram'],
    },
    {
      name: 'a comma in the path',
      memoryFile: '/t/a,b/ram.bin',
      objects: [
        'memory-backend-file,id=microvm.ram,size=1024M,mem-path=/t/a,,b/ram.bin,share=on,x-use-canonical-path-for-ramblock-id=off',
      ],
      machine: ['memory-backend=microvm.ram'],
    },
  ];
  for (const c of cases) {
    const argv = qemuArgv('q', spec({ memoryMib: 1024, memoryFile: c.memoryFile }));
    assert.deepEqual(values(argv, '-object'), c.objects, c.name);
    assert.deepEqual(values(argv, '-machine'), c.machine, c.name);
    assert.deepEqual(values(argv, '-m'), ['1024M'], c.name);
    assert.deepEqual(values(argv, '-device'), values(qemuArgv('q', spec()), '-device'), c.name);
  }
});
