import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';

export function register(kernel: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  kernel
    .command('rm')
    .description('remove a kernel (images built with it keep their own copy)')
    .argument('<name>', 'kernel name')
    .action(async (name: string) => {
      const c = ctx();
      await c.client.call('kernel.delete', { name });
      c.out.write(`removed kernel ${name}\n`);
      setCode(0);
    });
}
