import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';

export function register(image: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  image
    .command('delete')
    .alias('rm')
    .description('delete an image (refused while VMs use it)')
    .argument('<image>', 'image name or id')
    .action(async (name: string) => {
      const c = ctx();
      const r = await c.client.call('image.delete', { name });
      c.out.write(`deleted image ${r.name}\n`);
      setCode(0);
    });
}
