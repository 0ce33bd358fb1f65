import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('delete')
    .alias('rm')
    .description('delete an image (refused while VMs use it)')
    .argument('<image>', 'image name or id')
    .action(
      act(async (name: string) => {
        const c = ctx();
        const r = await c.client.call('image.delete', { name });
        return { text: `deleted image ${r.name}\n` };
      }),
    );
}
