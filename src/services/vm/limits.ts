import { maxMemoryMib, maxVcpu, type Config, type HostFacts } from '../../config/config.js';
import { formatSize, MAX_DISK_BYTES } from '../../config/sizes.js';
import { badRequest, precondition } from '../../errors.js';
import { checkCompat } from '../../kernel/compat.js';
import type { AccelDecision } from '../../system/host.js';
import type { KernelFiles } from '../kernel/manifest.js';
import type { VmmCapabilities } from '../../vmm/driver.js';

/*
 * The checks a VM spec passes before anything is made. Errors name the API
 * field (vcpu, memory_mib, disk_bytes), not a CLI flag: the daemon is called by
 * more than the CLI. Hints still show the CLI way to fix it.
 */

/** The smallest work disk banger makes. */
export const MIN_DISK_BYTES = 64 * 1024 * 1024;
export const MIN_MEMORY_MIB = 128;

export function checkVcpu(vcpu: number, host: HostFacts): void {
  const max = maxVcpu(host);
  if (!Number.isInteger(vcpu) || vcpu < 1)
    throw badRequest(`invalid vcpu ${vcpu}: must be a whole number from 1 to ${max}`, 'e.g. 1 (vm create --vcpu 1)');
  if (vcpu > max)
    throw badRequest(
      `invalid vcpu ${vcpu}: more than this host's ${host.cpus} CPUs (at most ${max})`,
      `use ${max} or less (--vcpu ${max})`,
    );
}

export function checkMemory(mib: number, host: HostFacts): void {
  if (!Number.isInteger(mib) || mib < MIN_MEMORY_MIB)
    throw badRequest(
      `invalid memory_mib ${mib}: must be at least ${MIN_MEMORY_MIB} MiB`,
      'e.g. 2048 (MiB), or --memory 2G on the command line',
    );
  const max = maxMemoryMib(host);
  if (mib > max)
    throw badRequest(
      `invalid memory_mib ${mib}: more than this host's memory (at most ${max} MiB)`,
      `use ${max} MiB or less, e.g. --memory 2G on the command line`,
    );
}

/** A work disk size in bytes: at least 64M, at most MAX_DISK_BYTES (8T). */
export function checkDiskBytes(bytes: number): void {
  const shown = Number.isSafeInteger(bytes) && bytes > 0 ? `${bytes} (${formatSize(bytes)})` : String(bytes);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_DISK_BYTES)
    throw badRequest(
      `invalid disk_bytes ${shown}: must be at least ${formatSize(MIN_DISK_BYTES)}`,
      'e.g. 8G (--disk-size 8G)',
    );
  if (bytes > MAX_DISK_BYTES)
    throw badRequest(
      `invalid disk_bytes ${shown}: larger than the maximum disk size, ${formatSize(MAX_DISK_BYTES)}`,
      `use at most ${formatSize(MAX_DISK_BYTES)}; disks are sparse files, so a smaller size costs nothing until the guest writes`,
    );
}

/** Fails before anything is created when the VMM cannot run a VM here (SPEC §1), from what it declares. */
export function checkVmm(
  vmm: { kind: string; capabilities: VmmCapabilities },
  accel: AccelDecision,
  networkMode: 'user' | 'bridge',
): void {
  const caps = vmm.capabilities;
  if (caps.needsKvm && accel.accel !== 'kvm') {
    throw precondition(
      `vmm = "${vmm.kind}" needs hardware virtualization (KVM), and this host has none (${accel.reason})`,
      'set vmm = "auto" or "qemu" in config.toml to run under qemu, or use a host with VT-x/AMD-V and a read-write /dev/kvm',
    );
  }
  if (networkMode === 'user' && !caps.networks.some((n) => n.mode === 'user' && n.addresses)) {
    throw precondition(
      `vmm = "${vmm.kind}" needs bridge networking (a tap per VM), and network_mode is "user"`,
      'set vmm = "auto" or "qemu" in config.toml, or network_mode = "bridge" (SPEC §7.3)',
    );
  }
  if (networkMode === 'bridge' && !caps.networks.some((n) => n.mode === 'bridge')) {
    throw precondition(
      `vmm = "${vmm.kind}" cannot attach a VM to a bridge (network_mode = "bridge")`,
      'set vmm = "auto" or "qemu" in config.toml, or remove network_mode to use user-mode networking',
    );
  }
}

/** Fails when the image's kernel cannot boot under this VMM (kernel/compat.ts). */
export function checkKernel(kernel: KernelFiles, vmm: 'qemu' | 'firecracker'): void {
  const incompatible = checkCompat(
    kernel.manifest.name,
    {
      format: kernel.manifest.format,
      pvhNote: kernel.manifest.traits.pvhNote ?? false,
      virtioMmio: kernel.manifest.traits.virtioMmio ?? 'unknown',
    },
    kernel.initrd !== undefined,
    vmm,
  );
  if (incompatible) throw incompatible;
}

/** A create's sizes, the config's defaults filling what it leaves out, each checked against this host. */
export function createSizes(
  p: { vcpu?: number | undefined; memory_mib?: number | undefined; disk_bytes?: number | undefined },
  cfg: Pick<Config, 'vmDefaults'>,
  host: HostFacts,
): { vcpu: number; memoryMib: number; diskBytes: number } {
  const vcpu = p.vcpu ?? cfg.vmDefaults.vcpu;
  checkVcpu(vcpu, host);
  const memoryMib = p.memory_mib ?? cfg.vmDefaults.memoryMib;
  checkMemory(memoryMib, host);
  const diskBytes = p.disk_bytes ?? cfg.vmDefaults.diskSizeBytes;
  checkDiskBytes(diskBytes);
  return { vcpu, memoryMib, diskBytes };
}
