/** Virtio serials by which the guest finds its disks (device order is not stable on virtio-mmio). */
export const DISK_SERIALS = { root: 'banger-root', work: 'banger-work', modules: 'banger-modules' } as const;

export interface BootArgsInput {
  hostname: string;
  /** Guest address with prefix, e.g. 10.0.2.15/24. */
  ip: string;
  gateway: string;
  /** Omitted: no banger.dns, the guest keeps the image's /etc/resolv.conf. */
  dns?: string | undefined;
  mac: string;
  hasModulesDisk: boolean;
  /** Without banger's initramfs the kernel (or a foreign initrd) needs root= by device: the root disk is attached first. */
  rootByDevice?: boolean;
  /** Under TCG: the host TSC frequency, so the guest skips PIT calibration (docs/TESTING.md). */
  tscKhz: number | undefined;
  /** CONFIG_HZ of the guest kernel (Debian: 250). */
  hz?: number;
  /**
   * A template boot (issue 17, docs/warm-start.md): `banger.template=1` holds sshd, host key
   * generation and every unit after banger's identity step at a gate that the agent opens once the
   * host gave the restored guest its own identity; the machine-id stays transient.
   */
  template?: boolean;
}

/**
 * Kernel command line. `panic=-1` with qemu's -no-reboot turns a kernel
 * panic into a VMM exit the boot watch sees at once.
 */
export function bootArgs(i: BootArgsInput): string {
  const args = [
    'console=ttyS0',
    'reboot=k',
    'panic=-1',
    'rw',
    `banger.root=${DISK_SERIALS.root}`,
    `banger.work=${DISK_SERIALS.work}`,
    `banger.hostname=${i.hostname}`,
    `banger.ip=${i.ip}`,
    `banger.gw=${i.gateway}`,
    ...(i.dns === undefined ? [] : [`banger.dns=${i.dns}`]),
    `banger.mac=${i.mac}`,
  ];
  if (i.rootByDevice) args.push('root=/dev/vda', 'rootfstype=ext4');
  if (i.hasModulesDisk) args.push(`banger.modules=${DISK_SERIALS.modules}`);
  // systemd.show_status=error: at the gate systemd would redraw "A start job is running for
  // banger-gate.service" every second, and a template is saved once the console is quiet.
  if (i.template) args.push('banger.template=1', 'systemd.show_status=error');
  if (i.tscKhz !== undefined) {
    const hz = i.hz ?? 250;
    args.push(`tsc_early_khz=${i.tscKhz}`, `lpj=${Math.round((i.tscKhz * 1000) / hz)}`);
  }
  return args.join(' ');
}

/** A locally administered MAC derived from the VM id (stable across restarts). */
export function macFromId(id: string): string {
  const hex = id
    .replace(/[^0-9a-f]/g, '')
    .padEnd(6, '0')
    .slice(0, 6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}
