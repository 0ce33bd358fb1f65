import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

export function register(kernel: Command, ctx: () => CliContext, act: Act): void {
  kernel
    .command('pull')
    .description('pull a kernel from the catalog')
    .argument('<name>', 'catalog name (see `banger kernel list --available`)')
    .option('--force', 'pull again even if it is already present')
    .addHelpText('after', '\nExample:\n  banger kernel pull debian-bookworm-cloud')
    .action(
      act(async (name: string, o: { force?: boolean }) => {
        const c = ctx();
        const k = await c.client.call(
          'kernel.pull',
          { name, force: o.force ?? false },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { text: `pulled kernel ${k.name} (${k.version}, ${k.format}, sha256 ${k.sha256.slice(0, 12)}…)\n` };
      }),
    );
}
