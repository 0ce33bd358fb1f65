import { checkCompat, type KernelTraits } from '../kernel/compat.js';
import type { AccelDecision } from '../system/host.js';
import { checkFirecrackerVersion } from './firecracker/version.js';

/*
 * Which VMM runs the daemon's VMs (SPEC §1): `vmm = "auto"` picks firecracker
 * only when its binary (1.5 or later) is found, KVM is usable, the network is
 * a bridge (firecracker has no user-mode network) and the default kernel can
 * boot under it (an ELF vmlinux with virtio-mmio built in); otherwise qemu.
 * Pure: the daemon gathers the facts (probeVmmFacts) and shows the reason in
 * `vm show` and `doctor`.
 */

export type VmmKind = 'qemu' | 'firecracker';

/** What the choice depends on, gathered once at daemon start. */
export interface VmmFacts {
  want: 'auto' | VmmKind;
  networkMode: 'user' | 'bridge';
  firecracker: {
    bin: string;
    /** Absolute path when found on PATH (or as given). */
    path: string | undefined;
    /** What `firecracker --version` printed; undefined when it could not run. */
    versionText: string | undefined;
  };
  accel: Pick<AccelDecision, 'accel' | 'reason'>;
  /** The default kernel, when it is present. */
  kernel:
    { name: string; format: KernelTraits['format']; traits: Partial<KernelTraits>; hasInitrd: boolean } | undefined;
  defaultKernelName: string;
}

export interface VmmChoice {
  vmm: VmmKind;
  /** Why, in a few words: "vmm = \"qemu\" in config", "firecracker: binary not found". */
  reason: string;
}

/** Why firecracker cannot run the daemon's VMs here, in check order; empty when it can. */
export function firecrackerBlockers(f: VmmFacts): string[] {
  const out: string[] = [];
  const fc = f.firecracker;
  if (fc.path === undefined) out.push(`binary not found (firecracker_bin = "${fc.bin}")`);
  else if (fc.versionText === undefined) out.push(`\`${fc.path} --version\` did not run`);
  else {
    const v = checkFirecrackerVersion(fc.versionText);
    if (!v.ok) out.push(v.message ?? 'unknown version');
  }
  if (f.accel.accel !== 'kvm') out.push(`no usable KVM (${f.accel.reason})`);
  if (f.networkMode !== 'bridge') out.push('needs network_mode = "bridge"');
  const k = f.kernel;
  if (k === undefined) out.push(`default kernel "${f.defaultKernelName}" is not pulled yet`);
  else {
    const traits: KernelTraits = {
      format: k.format,
      pvhNote: k.traits.pvhNote ?? false,
      virtioMmio: k.traits.virtioMmio ?? 'unknown',
    };
    const err = checkCompat(k.name, traits, k.hasInitrd, 'firecracker');
    if (err) out.push(err.message.replace(/^firecracker /, ''));
    else if (traits.virtioMmio === 'unknown')
      out.push(`cannot tell whether kernel "${k.name}" has virtio-mmio built in`);
  }
  return out;
}

export function decideVmm(f: VmmFacts): VmmChoice {
  if (f.want !== 'auto') return { vmm: f.want, reason: `vmm = "${f.want}" in config` };
  const blocker = firecrackerBlockers(f)[0];
  if (blocker !== undefined) return { vmm: 'qemu', reason: `firecracker: ${blocker}` };
  return {
    vmm: 'firecracker',
    reason: `firecracker ${checkFirecrackerVersion(f.firecracker.versionText ?? '').version}, KVM and kernel "${f.kernel?.name ?? ''}" are usable`,
  };
}
