import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

interface ImportOptions {
  kernel?: string;
  initrd?: string;
  modules?: string;
  from?: string;
}

export function register(kernel: Command, ctx: () => CliContext, act: Act): void {
  kernel
    .command('import')
    .description('import a kernel from files on this host')
    .argument('<name>', 'name for the kernel (letters, digits, . - _)')
    .option('--kernel <file>', 'kernel image: bzImage/vmlinuz or ELF vmlinux')
    .option('--initrd <file>', 'initrd to use (default: banger generates one when the virtio drivers are modules)')
    .option('--modules <dir>', 'the lib/modules/<release> directory')
    .option('--from <dir>', 'a directory with vmlinux|bzImage|vmlinuz, initrd.img and modules/')
    .addHelpText(
      'after',
      '\nExamples:\n  banger kernel import mine --kernel ./vmlinux\n  banger kernel import deb --from ./unpacked-kernel',
    )
    .action(
      act(async (name: string, o: ImportOptions) => {
        const c = ctx();
        const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(p));
        const k = await c.client.call(
          'kernel.import',
          {
            name,
            ...(o.kernel ? { kernel: abs(o.kernel) } : {}),
            ...(o.initrd ? { initrd: abs(o.initrd) } : {}),
            ...(o.modules ? { modules: abs(o.modules) } : {}),
            ...(o.from ? { from: abs(o.from) } : {}),
          },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { text: `imported kernel ${k.name} (${k.version}, ${k.format})\n` };
      }),
    );
}
