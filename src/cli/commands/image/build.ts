import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('build')
    .description('build a Debian image locally with mmdebstrap (the default recipe plus your packages)')
    .argument('<name>', 'image name')
    .option('--suite <suite>', 'Debian suite', 'bookworm')
    .option('--mirror <url>', 'Debian mirror URL')
    .option('--packages <list>', 'extra packages, comma-separated')
    .option('--size <size>', 'rootfs size (default: 1.5 × content, at least 1G)')
    .addHelpText('after', '\nExample:\n  banger image build pydev --packages python3-venv,python3-pip --size 4G')
    .action(
      act(async (name: string, o: { suite: string; mirror?: string; packages?: string; size?: string }) => {
        const c = ctx();
        const i = await c.client.call(
          'image.build',
          {
            name,
            suite: o.suite,
            ...(o.mirror ? { mirror: o.mirror } : {}),
            ...(o.packages ? { packages: o.packages.split(',').map((p) => p.trim()) } : {}),
            ...(o.size ? { size: o.size } : {}),
          },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { text: `built image ${i.name} (${i.id.slice(0, 12)})\n` };
      }),
    );
}
