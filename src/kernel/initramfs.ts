import { gzipSync } from 'node:zlib';
import { cpioNewc, type CpioEntry } from './cpio.js';

/**
 * Modules the generated initramfs loads: virtio-mmio transport, block, net, vsock (SPEC §5), and
 * virtio_console for the guest agent's virtio-serial port (docs/agent-protocol.md).
 */
export const INITRAMFS_MODULES = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'vsock',
  'vmw_vsock_virtio_transport',
] as const;

/**
 * What banger's initramfs contains, as a number recorded in each kernel's manifest
 * (`initramfs_version`; absent means 1). Bump it whenever INITRAMFS_MODULES or
 * banger-init change: kernels assembled earlier get their initramfs regenerated
 * when they are next booted (services/kernel/initramfs-refresh.ts).
 *   1: virtio-mmio, blk, net, vsock
 *   2: + virtio_console; banger-init runs as PID 1 in images without systemd
 *   3: banger.root=/dev/X (firecracker: disks by order, not serial)
 */
export const INITRAMFS_VERSION = 3;

export interface InitramfsInput {
  /** Kernel release, e.g. 6.1.0-56-cloud-amd64. */
  release: string;
  /** The static banger-init program (guest-src/banger-init.c). */
  init: Buffer;
  /** Module paths relative to lib/modules/<release>, in load order, with their bytes. */
  modules: { path: string; data: Buffer }[];
}

/**
 * The archive banger-init expects: /init, /etc/banger-modules (absolute module
 * paths in load order), the modules themselves, mount points, and /dev/console
 * (the kernel opens it for init's stdio before anything mounts devtmpfs).
 */
export function initramfsEntries(i: InitramfsInput): CpioEntry[] {
  const base = `lib/modules/${i.release}`;
  const dirs = new Set<string>(['dev', 'proc', 'sys', 'newroot', 'etc', 'lib', 'lib/modules', base]);
  for (const m of i.modules) {
    const parts = `${base}/${m.path}`.split('/');
    for (let n = 1; n < parts.length; n++) dirs.add(parts.slice(0, n).join('/'));
  }
  const entries: CpioEntry[] = [...dirs].sort().map((path) => ({ type: 'dir' as const, path, mode: 0o755 }));
  entries.push({ type: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 });
  entries.push({ type: 'file', path: 'init', mode: 0o755, data: i.init });
  const list = i.modules.map((m) => `/${base}/${m.path}\n`).join('');
  entries.push({ type: 'file', path: 'etc/banger-modules', mode: 0o644, data: Buffer.from(list) });
  for (const m of i.modules) entries.push({ type: 'file', path: `${base}/${m.path}`, mode: 0o644, data: m.data });
  return entries;
}

export function buildInitramfs(i: InitramfsInput): Buffer {
  return gzipSync(cpioNewc(initramfsEntries(i)), { level: 9 });
}
