import type { VmmCapabilities, VmmSpec } from '../driver.js';
import { hostfwdRule, USER_NETDEV_ID } from './hostfwd.js';

/**
 * A value inside a qemu option string (`-drive a=b,c=d`): qemu splits those
 * on commas and reads ',,' as a literal comma, so a path with commas stays one
 * value. (-kernel, -initrd and -append take their argument whole.)
 */
export function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** The virtio-serial port name the guest agent looks for in /sys/class/virtio-ports (docs/agent-protocol.md). */
export const AGENT_PORT_NAME = 'org.banger.agent';
const AGENT_SERIAL_BUS = 'vser0';

/**
 * qemu-system-x86_64 argv for a microvm guest. Pure: every host-dependent
 * choice (accel, port, paths) is already in the spec.
 */
export function qemuArgv(qemuBin: string, s: VmmSpec): string[] {
  const argv = [
    qemuBin,
    '-name',
    `banger-${s.name},debug-threads=on`,
    '-M',
    'microvm,x-option-roms=off,rtc=on',
    '-accel',
    s.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu',
    s.accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(s.vcpu),
    '-m',
    `${s.memoryMib}M`,
    ...memoryBackend(s),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    // The guest's poweroff or reboot ends the VMM, so a halted guest never lingers.
    '-no-reboot',
    '-kernel',
    s.kernelPath,
    '-append',
    s.cmdline,
    // append=on: the daemon cuts the log back while the VM runs (services/vm/console.ts); without
    // O_APPEND qemu would keep writing at its old offset and leave a hole of that size.
    '-chardev',
    `file,id=console,path=${qemuOptValue(s.consoleLog)},append=on`,
    '-serial',
    'chardev:console',
    '-qmp',
    `unix:${qemuOptValue(s.controlSocket)},server=on,wait=off`,
    '-monitor',
    'none',
  ];
  if (s.initrdPath) argv.push('-initrd', s.initrdPath);
  for (const d of s.disks) {
    const ro = d.readonly ? ',readonly=on' : '';
    argv.push(
      '-drive',
      `id=${d.id},file=${qemuOptValue(d.path)},format=${d.format},if=none,discard=unmap${ro}`,
      '-device',
      `virtio-blk-device,drive=${d.id},serial=${d.serial}`,
    );
  }
  if (s.agentSocket !== undefined) {
    // The guest agent's channel: a virtio-serial port on the microvm's virtio-mmio bus, bridged to
    // a Unix socket qemu listens on (wait=off: the guest boots whether or not the host is connected).
    argv.push(
      '-device',
      `virtio-serial-device,id=${AGENT_SERIAL_BUS}`,
      '-chardev',
      `socket,id=agent,path=${qemuOptValue(s.agentSocket)},server=on,wait=off`,
      '-device',
      `virtserialport,bus=${AGENT_SERIAL_BUS}.0,chardev=agent,name=${AGENT_PORT_NAME}`,
    );
  }
  if (s.net.mode === 'bridge') {
    // The tap exists already (the VM service made it on the bridge); qemu only opens it.
    argv.push('-netdev', `tap,id=net0,ifname=${qemuOptValue(s.net.tap)},script=no,downscript=no`);
  } else {
    const restrict = s.net.allowOutbound ? 'off' : 'on';
    const fwd = [{ protocol: 'tcp', address: '127.0.0.1', hostPort: s.net.sshPort, guestPort: 22 } as const];
    const rules = [...fwd, ...(s.net.forwards ?? [])].map((f) => `,hostfwd=${hostfwdRule(f)}`).join('');
    argv.push('-netdev', `user,id=${USER_NETDEV_ID},restrict=${restrict}${rules}`);
  }
  argv.push('-device', `virtio-net-device,netdev=${USER_NETDEV_ID},mac=${s.net.mac}`);
  // Warm start: the guest state comes by QMP migrate-incoming (vmm/qemu/migrate.ts); the device set
  // above must be the template's, in the same order.
  if (s.incoming) argv.push('-incoming', 'defer');
  return argv;
}

/**
 * The RAM block's name without a memory backend of ours: a file-backed guest uses the same one, so a
 * guest saved from either kind of VMM loads into the other (a snapshot of a restored VM).
 */
export const RAM_BLOCK_ID = 'microvm.ram';

/** A file-backed guest RAM (VmmSpec.memoryFile): shared, so migration with x-ignore-shared skips it. */
function memoryBackend(s: VmmSpec): string[] {
  if (s.memoryFile === undefined) return [];
  return [
    '-object',
    `memory-backend-file,id=${RAM_BLOCK_ID},size=${s.memoryMib}M,mem-path=${qemuOptValue(s.memoryFile)},share=on,x-use-canonical-path-for-ramblock-id=off`,
    '-machine',
    `memory-backend=${RAM_BLOCK_ID}`,
  ];
}

/** The address plan of qemu's user-mode network (fixed by slirp's defaults). */
export const USER_NET = { guestIp: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3' } as const;

/** What qemu, as qemuArgv runs it, offers the VM service. */
export const QEMU_CAPABILITIES: VmmCapabilities = {
  diskFormats: ['qcow2', 'raw'],
  // Bridge addresses are per VM (services/network/bridge.ts); the tap is VmmSpec.net.tap.
  networks: [{ mode: 'user', addresses: USER_NET }, { mode: 'bridge' }],
  needsKvm: false,
  controlSocket: {
    suffix: '.qmp',
    // Its `-qmp unix:PATH,server=on,…` argument, which only that VMM carries.
    carriedBy: (argv, path) => argv.some((a) => a.startsWith(`unix:${qemuOptValue(path)},`)),
  },
};
