import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('warm')
    .description(
      "make the image's warm-start template for the default VM spec (a throwaway boot); exits 0 at once when it is current",
    )
    .argument('<image>', 'image name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (name: string) => {
        const c = ctx();
        const r = await c.client.call('image.warm', { name }, { onEvent: progressPrinter(c.err, c.style) });
        const what = r.built ? 'made the template' : 'the template is current';
        return { json: r, text: `${r.name}: ${what} ${r.template.key.slice(0, 12)}\n` };
      }),
    );
}
