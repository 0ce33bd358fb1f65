import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { keyValues } from '../../render/table.js';

export function register(kernel: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  kernel
    .command('show')
    .description('show one kernel: files, initramfs, modules, sha256, VMM compatibility')
    .argument('<name>', 'kernel name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const c = ctx();
      const k = await c.client.call('kernel.show', { name });
      if (opts.json) c.out.write(`${JSON.stringify(k, null, 2)}\n`);
      else {
        const rows: [string, string][] = [
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
        ];
        c.out.write(keyValues(rows));
      }
      setCode(0);
    });
}
