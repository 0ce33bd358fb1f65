import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';

export function register(kernel: Command, ctx: () => CliContext, act: Act): void {
  kernel
    .command('rm')
    .description('remove a kernel (images built with it keep their own copy)')
    .argument('<name>', 'kernel name')
    .action(
      act(async (name: string) => {
        const c = ctx();
        await c.client.call('kernel.delete', { name });
        return { text: `removed kernel ${name}\n` };
      }),
    );
}
