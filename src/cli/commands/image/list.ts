import type { Command } from 'commander';
import type { ImageView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function renderImages(images: readonly ImageView[]): string {
  if (images.length === 0) return 'no images yet (the default image is built by the first `banger vm run`)\n';
  return table(
    ['NAME', 'SOURCE', 'DISTRO', 'KERNEL', 'SIZE', 'ID'],
    images.map((i) => [i.name, i.source, i.distro, i.kernel, formatBytes(i.size_bytes), i.id.slice(0, 12)]),
  );
}

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('list')
    .alias('ls')
    .description('list local images')
    .option('--json', 'print JSON')
    .action(
      act(async () => {
        const images = await ctx().client.call('image.list', {});
        return { json: images, text: renderImages(images) };
      }),
    );
}
