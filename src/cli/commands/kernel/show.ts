import type { Command } from 'commander';
import type { KernelShowView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { keyValues } from '../../render/table.js';

export function renderKernel(k: KernelShowView): string {
  return keyValues([
    ['name', k.name],
    ['version', k.version],
    ['distro', k.distro],
    ['source', k.source],
    ['format', k.format],
    ['kernel', k.kernel],
    ['sha256', k.sha256],
    ['initramfs', k.initrd_path ? `${k.initrd_path} (${k.initrd_kind})` : 'none'],
    ['initramfs modules', String(k.initramfs_modules.length)],
    ['modules', `${k.modules}${k.modules_disk ? ` on ${k.modules_disk}` : ''}`],
    ['virtio-mmio', k.traits.virtioMmio ?? 'unknown'],
    ['PVH note', k.format === 'elf' ? String(k.traits.pvhNote ?? false) : 'n/a (bzImage)'],
    ['imported', k.created_at],
  ]);
}

export function register(kernel: Command, ctx: () => CliContext, act: Act): void {
  kernel
    .command('show')
    .description('show one kernel: files, initramfs, modules, sha256, VMM compatibility')
    .argument('<name>', 'kernel name')
    .option('--json', 'print JSON')
    .action(
      act(async (name: string) => {
        const k = await ctx().client.call('kernel.show', { name });
        return { json: k, text: renderKernel(k) };
      }),
    );
}
