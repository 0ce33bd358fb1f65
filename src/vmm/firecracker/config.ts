import { precondition } from '../../errors.js';
import type { DiskSpec, VmmSpec } from '../driver.js';

/*
 * Request bodies for the Firecracker API (schema: src/firecracker/swagger/firecracker.yaml
 * in firecracker-microvm/firecracker; banger needs v1.5.0 or later). Pure: every
 * host-dependent input is in the spec or in FirecrackerExtra.
 *
 * Disk roles. banger's guest normally finds its disks by virtio serial, but
 * firecracker cannot set one: the virtio-blk ID it reports is derived from the
 * backing file's device and inode numbers, not from drive_id. What firecracker
 * does fix is the order: the root drive always goes first and the others follow
 * in the order they were PUT, and the guest's virtio-blk devices are named in
 * that order. So for firecracker banger must pass disk roles by order:
 * root = /dev/vda, then work = /dev/vdb, then modules = /dev/vdc (whatever
 * firecrackerDiskDevices returns). diskArgsByDevice rewrites every banger.*
 * parameter whose value is a disk's serial (banger.root=banger-root, ...) to
 * that disk's device (banger.root=/dev/vda, ...); the guest (banger-init's
 * find_by_serial, the bootstrap's disk_by_serial) takes a /dev/ path as the
 * device itself and anything else as a serial. qemu keeps serials.
 * Firecracker also appends "root=/dev/vda rw" (or "ro") to the boot arguments
 * itself when a root drive is configured.
 */

export type FirecrackerLogLevel = 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off';

/** What firecracker needs beyond the VmmSpec. */
export interface FirecrackerExtra {
  /** Host tap device backing the guest NIC; firecracker has no user-mode network. */
  tap: string | undefined;
  /** Host-side Unix socket and guest CID of a vsock device, if the VM gets one. */
  vsock?: { udsPath: string; guestCid: number } | undefined;
  /** File or FIFO for firecracker's own log (it must exist before the PUT). */
  logPath: string;
  logLevel?: FirecrackerLogLevel;
  /** File or FIFO for firecracker's metrics (must exist); no metrics when absent. */
  metricsPath?: string | undefined;
}

export interface MachineConfigBody {
  vcpu_count: number;
  mem_size_mib: number;
  smt: false;
}

export interface BootSourceBody {
  kernel_image_path: string;
  boot_args: string;
  initrd_path?: string;
}

export interface DriveBody {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only: boolean;
}

export interface NetworkInterfaceBody {
  iface_id: string;
  host_dev_name: string;
  guest_mac: string;
}

export interface VsockBody {
  guest_cid: number;
  uds_path: string;
}

export interface LoggerBody {
  log_path: string;
  level: FirecrackerLogLevel;
  show_level: boolean;
  show_log_origin: boolean;
}

export interface MetricsBody {
  metrics_path: string;
}

export type ActionType = 'InstanceStart' | 'SendCtrlAltDel' | 'FlushMetrics';

export interface ActionBody {
  action_type: ActionType;
}

export interface ApiCall {
  method: 'PUT' | 'PATCH';
  path: string;
  body: unknown;
}

/** Firecracker's limits (machine-config schema; x86_64 kernel command line buffer). */
export const FC_MAX_VCPUS = 32;
export const FC_CMDLINE_MAX = 2048;
/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
const IFNAME_MAX = 15;
/** API resource ids (drives, network interfaces) may hold only these characters. */
const API_ID = /^[A-Za-z0-9_]+$/;
export const GUEST_IFACE_ID = 'eth0';

const HINT_BRIDGE =
  'set network_mode = "bridge" in config.toml (firecracker VMs need a tap on the banger bridge), or use vmm = "qemu"';

export function machineConfigBody(spec: VmmSpec): MachineConfigBody {
  if (!Number.isInteger(spec.vcpu) || spec.vcpu < 1 || spec.vcpu > FC_MAX_VCPUS) {
    throw precondition(
      `firecracker runs 1 to ${FC_MAX_VCPUS} vCPUs; VM "${spec.name}" asks for ${spec.vcpu}`,
      `pick --cpus between 1 and ${FC_MAX_VCPUS}`,
    );
  }
  if (!Number.isInteger(spec.memoryMib) || spec.memoryMib < 1) {
    throw precondition(
      `VM "${spec.name}" asks for ${spec.memoryMib} MiB of memory; firecracker needs a whole number of MiB above 0`,
    );
  }
  return { vcpu_count: spec.vcpu, mem_size_mib: spec.memoryMib, smt: false };
}

export function bootSourceBody(spec: VmmSpec): BootSourceBody {
  // Firecracker parses boot_args into a fixed 2048-byte buffer (NUL included) of printable ASCII.
  if (spec.cmdline.length >= FC_CMDLINE_MAX) {
    throw precondition(
      `the kernel command line of VM "${spec.name}" is ${spec.cmdline.length} bytes; firecracker takes at most ${FC_CMDLINE_MAX - 1}`,
    );
  }
  if (!/^[\x20-\x7e]*$/.test(spec.cmdline)) {
    throw precondition(
      `the kernel command line of VM "${spec.name}" holds characters other than printable ASCII, which firecracker refuses`,
    );
  }
  const body: BootSourceBody = { kernel_image_path: spec.kernelPath, boot_args: spec.cmdline };
  if (spec.initrdPath !== undefined) body.initrd_path = spec.initrdPath;
  return body;
}

/** The disks in the order firecracker attaches them: the one with id "root" (else the first) leads, the rest keep spec order. */
export function orderedDisks(disks: readonly DiskSpec[]): DiskSpec[] {
  const i = Math.max(
    0,
    disks.findIndex((d) => d.id === 'root'),
  );
  const root = disks[i];
  return root === undefined ? [] : [root, ...disks.filter((_, j) => j !== i)];
}

/** Guest device name of the n-th virtio-blk disk (0 → vda, 25 → vdz, 26 → vdaa), as Linux names them. */
export function virtioBlockName(n: number): string {
  let name = '';
  for (let k = n; k >= 0; k = Math.floor(k / 26) - 1) name = String.fromCharCode(97 + (k % 26)) + name;
  return `/dev/vd${name}`;
}

/** Each disk's guest device under firecracker, in attach order; banger passes roles by these names. */
export function firecrackerDiskDevices(disks: readonly DiskSpec[]): { id: string; device: string }[] {
  return orderedDisks(disks).map((d, n) => ({ id: d.id, device: virtioBlockName(n) }));
}

/** The command line with each banger.*=<disk serial> parameter naming that disk's firecracker device instead. */
export function diskArgsByDevice(cmdline: string, disks: readonly DiskSpec[]): string {
  const bySerial = new Map(orderedDisks(disks).map((d, n) => [d.serial, virtioBlockName(n)]));
  return cmdline
    .split(' ')
    .map((arg) => {
      const eq = arg.indexOf('=');
      if (!arg.startsWith('banger.') || eq < 0) return arg;
      const device = bySerial.get(arg.slice(eq + 1));
      return device === undefined ? arg : `${arg.slice(0, eq + 1)}${device}`;
    })
    .join(' ');
}

export function driveBodies(spec: VmmSpec): DriveBody[] {
  return orderedDisks(spec.disks).map((d, n) => {
    if (d.format !== 'raw') {
      throw precondition(
        `firecracker cannot use disk "${d.id}" of VM "${spec.name}" (${d.path}): it is ${d.format}, and firecracker reads raw images only`,
        'give firecracker raw disk images (a raw copy or reflink instead of a qcow2 overlay), or use vmm = "qemu"',
      );
    }
    if (!API_ID.test(d.id)) {
      throw precondition(
        `disk id "${d.id}" of VM "${spec.name}" is not a valid firecracker drive id (letters, digits and "_" only)`,
      );
    }
    return { drive_id: d.id, path_on_host: d.path, is_root_device: n === 0, is_read_only: d.readonly };
  });
}

export function networkInterfaceBody(spec: VmmSpec, extraTap: string | undefined): NetworkInterfaceBody {
  let tap = extraTap;
  const net: { mode: string; mac: string; tap?: string } = spec.net;
  if (net.mode === 'user') throw precondition('firecracker needs bridge networking (a tap device)', HINT_BRIDGE);
  // The VM service's tap (VmmSpec.net) decides; FirecrackerExtra.tap is for a spec that names none.
  if (net.tap !== undefined && net.tap !== '') tap = net.tap;
  if (tap === undefined || tap === '') {
    throw precondition(`no tap device was given for firecracker VM "${spec.name}"`, HINT_BRIDGE);
  }
  if (tap.length > IFNAME_MAX) throw precondition(`tap device name "${tap}" is longer than ${IFNAME_MAX} characters`);
  return { iface_id: GUEST_IFACE_ID, host_dev_name: tap, guest_mac: net.mac };
}

export function vsockBody(v: { udsPath: string; guestCid: number }): VsockBody {
  // CIDs 0-2 are reserved (hypervisor, local, host); the field is a u32.
  if (!Number.isInteger(v.guestCid) || v.guestCid < 3 || v.guestCid > 0xffff_ffff) {
    throw precondition(`vsock guest CID ${v.guestCid} is invalid; it must be an integer from 3 to 4294967295`);
  }
  return { guest_cid: v.guestCid, uds_path: v.udsPath };
}

export function loggerBody(logPath: string, level: FirecrackerLogLevel = 'Info'): LoggerBody {
  return { log_path: logPath, level, show_level: true, show_log_origin: false };
}

export function metricsBody(metricsPath: string): MetricsBody {
  return { metrics_path: metricsPath };
}

export function actionBody(action_type: ActionType): ActionBody {
  return { action_type };
}

const put = (path: string, body: unknown): ApiCall => ({ method: 'PUT', path, body });

/**
 * Every API call that configures and boots one VM, in order. Only InstanceStart
 * must come last for firecracker; the logger comes first because until it is
 * set firecracker logs to its stdout, which is the guest console file.
 * Throws a precondition AppError when firecracker cannot run the spec.
 */
export function firecrackerPlan(spec: VmmSpec, extra: FirecrackerExtra): ApiCall[] {
  if (spec.accel !== 'kvm') {
    throw precondition(
      `firecracker cannot run VM "${spec.name}" under software emulation (tcg); it needs KVM`,
      'set vmm = "qemu" (or "auto") in config.toml; firecracker needs /dev/kvm with VT-x/AMD-V',
    );
  }
  const net = networkInterfaceBody(spec, extra.tap);
  const plan: ApiCall[] = [put('/logger', loggerBody(extra.logPath, extra.logLevel))];
  if (extra.metricsPath !== undefined) plan.push(put('/metrics', metricsBody(extra.metricsPath)));
  plan.push(
    put('/machine-config', machineConfigBody(spec)),
    put('/boot-source', bootSourceBody({ ...spec, cmdline: diskArgsByDevice(spec.cmdline, spec.disks) })),
  );
  for (const d of driveBodies(spec)) plan.push(put(`/drives/${d.drive_id}`, d));
  plan.push(put(`/network-interfaces/${net.iface_id}`, net));
  if (extra.vsock !== undefined) plan.push(put('/vsock', vsockBody(extra.vsock)));
  plan.push(put('/actions', actionBody('InstanceStart')));
  return plan;
}
