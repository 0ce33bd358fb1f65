import type { Command } from 'commander';
import type { ImageShowView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { formatBytes, keyValues } from '../../render/table.js';

export function renderImage(i: ImageShowView): string {
  return keyValues([
    ['name', i.name],
    ['id', i.id],
    ['source', i.source],
    ['distro', i.distro],
    ['kernel', i.kernel],
    ['rootfs', `${i.rootfs} (${formatBytes(i.size_bytes)})`],
    ['work-seed', i.work_seed ? 'yes' : 'no'],
    ['managed', i.managed ? 'yes' : 'no (registered)'],
    ['guest assets', `v${i.assets_version}`],
    ['used by', i.vms.length ? i.vms.join(', ') : '-'],
    ['created', i.created_at],
  ]);
}

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('show')
    .description('show one image')
    .argument('<image>', 'image name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (name: string) => {
        const i = await ctx().client.call('image.show', { name });
        return { json: i, text: renderImage(i) };
      }),
    );
}
