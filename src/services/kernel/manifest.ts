import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kernelFiles } from '../../system/paths.js';
import type { KernelRow } from '../../store/kernels.js';

/** manifest.json of a kernel dir (and of the kernel copy inside an image dir). */
export interface KernelManifest {
  name: string;
  distro: string;
  arch: string;
  version: string;
  format: 'bzImage' | 'elf';
  sha256: string;
  source: string;
  imported_at: string;
  initrd: 'banger' | 'external' | 'none';
  modules: number;
  has_modules_disk: boolean;
  traits: KernelRow['traits'];
  initramfs_modules?: string[];
  /** What banger's initramfs holds (kernel/initramfs.ts INITRAMFS_VERSION); absent: 1. */
  initramfs_version?: number;
}

/** The files a VMM boots from one kernel dir. */
export interface KernelFiles {
  dir: string;
  manifest: KernelManifest;
  kernel: string;
  initrd: string | undefined;
  modulesDisk: string | undefined;
}

export function filesOf(dir: string, m: KernelManifest): KernelFiles {
  return {
    dir,
    manifest: m,
    kernel: join(dir, m.format === 'elf' ? kernelFiles.vmlinux : kernelFiles.bzImage),
    initrd: m.initrd === 'none' ? undefined : join(dir, kernelFiles.initrd),
    modulesDisk: m.has_modules_disk ? join(dir, kernelFiles.modulesDisk) : undefined,
  };
}

export async function readKernelDir(dir: string): Promise<KernelFiles> {
  const m = JSON.parse(await readFile(join(dir, kernelFiles.manifest), 'utf8')) as KernelManifest;
  return filesOf(dir, m);
}

export function rowFromManifest(m: KernelManifest, dir: string): KernelRow {
  return {
    name: m.name,
    distro: m.distro,
    arch: m.arch,
    version: m.version,
    format: m.format,
    source: m.source,
    sha256: m.sha256,
    dir,
    hasInitrd: m.initrd !== 'none',
    hasModules: m.has_modules_disk,
    moduleCount: m.modules,
    traits: { ...m.traits },
    createdAt: m.imported_at,
  };
}
