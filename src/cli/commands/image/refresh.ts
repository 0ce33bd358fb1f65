import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('refresh')
    .description("put banger's current guest assets (agent, bootstrap, units) into an image (refused while VMs use it)")
    .argument('<image>', 'image name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (name: string) => {
        const c = ctx();
        const r = await c.client.call('image.refresh', { name }, { onEvent: progressPrinter(c.err, c.style) });
        return {
          json: r,
          text: `refreshed image ${r.name}: guest assets v${r.previous_assets_version} → v${r.assets_version}\n`,
        };
      }),
    );
}
