import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('export')
    .description('write an image as a bundle (tar.zst with rootfs.ext4 and manifest.json)')
    .argument('<image>', 'image name or id')
    .requiredOption('-o, --output <file>', 'bundle file to write')
    .addHelpText(
      'after',
      '\nExample:\n  banger image export dev -o dev.tar.zst\n  banger image pull file://$PWD/dev.tar.zst --sha256 <printed sha256> --name dev2',
    )
    .action(
      act(async (name: string, o: { output: string }) => {
        const c = ctx();
        const r = await c.client.call('image.export', {
          name,
          out: resolve(o.output),
        });
        return { text: `wrote ${r.path} (${r.bytes} bytes)\nsha256 ${r.sha256}\n` };
      }),
    );
}
