import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function register(image: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  image
    .command('list')
    .alias('ls')
    .description('list local images')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const c = ctx();
      const images = await c.client.call('image.list', {});
      if (opts.json) c.out.write(`${JSON.stringify(images, null, 2)}\n`);
      else if (images.length === 0)
        c.out.write('no images yet (the default image is built by the first `banger vm run`)\n');
      else
        c.out.write(
          table(
            ['NAME', 'SOURCE', 'DISTRO', 'KERNEL', 'SIZE', 'ID'],
            images.map((i) => [i.name, i.source, i.distro, i.kernel, formatBytes(i.size_bytes), i.id.slice(0, 12)]),
          ),
        );
      setCode(0);
    });
}
