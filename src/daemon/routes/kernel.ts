import type { KernelView } from '../../api/methods.js';
import type { KernelService } from '../../services/kernel/service.js';
import type { KernelRow } from '../../store/kernels.js';
import type { Routes } from '../server.js';

export function kernelView(k: KernelRow): KernelView {
  return {
    name: k.name,
    distro: k.distro,
    version: k.version,
    format: k.format,
    source: k.source,
    sha256: k.sha256,
    initrd: k.hasInitrd,
    modules: k.moduleCount,
    traits: k.traits,
    created_at: k.createdAt,
  };
}

/** kernel.*: the KernelService's rows as the API's views. */
export function kernelRoutes(kernels: KernelService): Routes<'kernel'> {
  return {
    'kernel.list': () => kernels.list().map(kernelView),
    'kernel.catalog': () => kernels.catalog(),
    'kernel.show': async (p) => {
      const files = await kernels.files(p.name);
      return {
        ...kernelView(kernels.get(p.name)),
        dir: files.dir,
        kernel: files.kernel,
        initrd_path: files.initrd ?? null,
        modules_disk: files.modulesDisk ?? null,
        initrd_kind: files.manifest.initrd,
        initramfs_modules: files.manifest.initramfs_modules ?? [],
      };
    },
    'kernel.delete': (p) => kernels.delete(p.name),
    'kernel.import': async (p, ctx) => kernelView(await kernels.import(p, ctx)),
    'kernel.pull': async (p, ctx) => kernelView(await kernels.pull(p.name, p.force ?? false, ctx)),
  };
}
