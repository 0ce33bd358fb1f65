import type { Command } from 'commander';
import type { KernelView } from '../../../api/methods.js';
import type { CliContext, ExitCode } from '../../context.js';
import { table } from '../../render/table.js';

export function register(program: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  const kernel = program.command('kernel').description('manage kernels');
  kernel
    .command('list')
    .alias('ls')
    .description('list local kernels')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const c = ctx();
      const kernels = await c.client.call<'kernel.list', KernelView[]>('kernel.list', {});
      if (opts.json) c.out.write(`${JSON.stringify(kernels, null, 2)}\n`);
      else if (kernels.length === 0) c.out.write('no kernels yet (the default kernel is pulled by the first `banger vm run`)\n');
      else c.out.write(table(['NAME', 'VERSION', 'FORMAT', 'MODULES', 'SOURCE'], kernels.map((k) => [k.name, k.version, k.format, String(k.modules), k.source])));
      setCode(0);
    });
}
