import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { formatBytes } from '../../render/table.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  const cache = image.command('cache').description('the OCI blob cache');
  cache
    .command('prune')
    .description('delete cached layer blobs (running pulls keep theirs)')
    .option('--dry-run', 'only report what would be freed')
    .action(
      act(async (o: { dryRun?: boolean }) => {
        const c = ctx();
        const r = await c.client.call('image.cache.prune', { dry_run: o.dryRun ?? false });
        return { text: `${r.dry_run ? 'would free' : 'freed'} ${formatBytes(r.bytes)} in ${r.blobs} blob(s)\n` };
      }),
    );
  cache.commands.forEach((x) => x.exitOverride());
}
