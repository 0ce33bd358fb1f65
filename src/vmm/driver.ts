import { AppError } from '../errors.js';

/**
 * The VMM could not bind the forwarded ssh port: it was free when picked and
 * taken before the VMM started. The caller may retry with another port.
 */
export class PortInUse extends AppError {
  constructor(
    readonly port: number,
    message: string,
    opts: { hint?: string; detail?: string } = {},
  ) {
    super('operation_failed', message, opts);
  }
}

/** Disk image formats a VMM may open. */
export type DiskFormat = 'raw' | 'qcow2';

/** The guest's side of a network whose address plan the VMM fixes (qemu's user-mode network). */
export interface GuestNet {
  /** Guest address with prefix length, e.g. 10.0.2.15/24. */
  guestIp: string;
  gateway: string;
  dns: string;
}

/** One network mode a VMM can give a guest; `addresses` when the mode fixes them (bridge addresses are per VM). */
export interface NetworkCapability {
  mode: 'user' | 'bridge';
  addresses?: GuestNet;
}

/**
 * What a VMM can do, declared by its driver: the VM service decides from
 * these alone and never asks which VMM it holds.
 */
export interface VmmCapabilities {
  /** Disk formats the VMM reads (a root disk in another format must be made another way). */
  diskFormats: readonly DiskFormat[];
  networks: readonly NetworkCapability[];
  /** Runs only with hardware virtualization (KVM). */
  needsKvm: boolean;
  controlSocket: {
    /** File name suffix of its control socket in the runtime dir (`<id>.qmp`). */
    suffix: string;
    /**
     * Whether a process command line is this VMM's on the control socket `path`:
     * finds a VMM whose handles were never recorded, and nothing else (a `tail -f` of its log).
     */
    carriedBy(argv: readonly string[], path: string): boolean;
  };
}

/** A host port forwarded into a user-mode guest (issue 14): ADDR:HOST_PORT on the host → GUEST_PORT in the guest. */
export interface PortForward {
  protocol: 'tcp' | 'udp';
  address: string;
  hostPort: number;
  guestPort: number;
}

/**
 * The guest's network: qemu's user-mode network with ssh forwarded to a
 * loopback port, or a tap the VM service made on the bridge (SPEC §7.3).
 */
export type VmmNet =
  | { mode: 'user'; sshPort: number; allowOutbound: boolean; mac: string; forwards?: readonly PortForward[] }
  | { mode: 'bridge'; tap: string; mac: string };

/** What a VMM needs to boot one VM; built by the VM service, never by a driver. */
export interface DiskSpec {
  id: string;
  path: string;
  format: DiskFormat;
  readonly: boolean;
  /** Virtio serial the guest finds the disk by. */
  serial: string;
}

export interface VmmSpec {
  id: string;
  name: string;
  vcpu: number;
  memoryMib: number;
  accel: 'kvm' | 'tcg';
  kernelPath: string;
  initrdPath: string | undefined;
  cmdline: string;
  disks: DiskSpec[];
  net: VmmNet;
  consoleLog: string;
  controlSocket: string;
  vmmLog: string;
  /**
   * Where the host reaches the guest agent (Paths.agentSocket): qemu bridges the guest's
   * virtio-serial port org.banger.agent to a Unix socket it listens on here.
   * Undefined: the VM gets no agent channel.
   */
  agentSocket?: string | undefined;
  /** The VMM waits for a saved guest state (qemu `-incoming defer`) instead of booting the kernel (warm start). */
  incoming?: boolean | undefined;
  /**
   * Guest RAM backed by this file, mapped shared (warm start): a template's memory is its file, and a
   * restore maps a copy, so the saved state carries devices only (qemu's x-ignore-shared). Unset: anonymous.
   */
  memoryFile?: string | undefined;
}

export interface VmmHandles {
  pid: number;
  startTime: number;
  controlSocket: string;
  /** The Unix socket of the guest agent channel, when the driver made one (docs/agent-protocol.md). */
  agentSocket?: string | undefined;
}

/**
 * What a live VMM says of its guest's vCPUs: running, paused (`vm pause`),
 * or anything else (qemu's shutdown, internal-error, migration states ...).
 */
export type VmmRunState = 'running' | 'paused' | 'other';

/**
 * One interface for every VMM. Services hold a VmmDriver and never branch on
 * which one it is.
 */
export interface VmmDriver {
  /** Its name, recorded with each VM and shown to users; never a reason to branch. */
  readonly kind: 'qemu' | 'firecracker';
  readonly capabilities: VmmCapabilities;
  /**
   * Starts the VMM detached (it outlives the daemon) and returns its handles once it runs.
   * `onSpawn` gets the handles as soon as the process exists, before the driver waits for
   * its control socket, so the caller can record them first (a daemon killed in that window
   * must still find the process); if it throws, the process is killed and start rejects.
   */
  start(spec: VmmSpec, signal?: AbortSignal, onSpawn?: (h: VmmHandles) => Promise<void>): Promise<VmmHandles>;
  /** Stops the VMM now (no guest shutdown); resolves when the process is gone. */
  kill(handles: VmmHandles, signal?: NodeJS.Signals): Promise<void>;
  isAlive(handles: VmmHandles): Promise<boolean>;
  /** Stops the guest's vCPUs; the process stays with its memory and devices (`vm pause`). */
  pause(handles: VmmHandles): Promise<void>;
  /** Lets the vCPUs of a paused guest run again (`vm resume`). */
  resume(handles: VmmHandles): Promise<void>;
  /** The run state the VMM reports (reconcile adopts a paused VM as paused). */
  runState(handles: VmmHandles): Promise<VmmRunState>;
  /** Adds or removes a port forward of a running user-mode VM; absent when the VMM has no user-mode network. */
  forward?(handles: VmmHandles, op: 'add' | 'remove', f: PortForward): Promise<void>;
}
