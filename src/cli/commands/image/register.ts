import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('register')
    .description('register an ext4 rootfs on this host as an (unmanaged) image')
    .argument('<name>', 'image name')
    .requiredOption('--rootfs <file>', 'raw ext4 image file')
    .option('--kernel-ref <kernel>', 'kernel to boot it with (default: default_kernel_name)')
    .option('--work-seed <file>', "ext4 image whose content seeds each VM's /root")
    .addHelpText('after', '\nExample:\n  banger image register mine --rootfs /srv/rootfs.ext4')
    .action(
      act(async (name: string, o: { rootfs: string; kernelRef?: string; workSeed?: string }) => {
        const c = ctx();
        const i = await c.client.call('image.register', {
          name,
          rootfs: resolve(o.rootfs),
          ...(o.kernelRef ? { kernel_ref: o.kernelRef } : {}),
          ...(o.workSeed ? { work_seed: resolve(o.workSeed) } : {}),
        });
        return { text: `registered image ${i.name}\n` };
      }),
    );
  image
    .command('promote')
    .description('copy a registered image into managed storage')
    .argument('<image>', 'image name or id')
    .action(
      act(async (name: string) => {
        const c = ctx();
        const i = await c.client.call('image.promote', { name });
        return { text: `promoted image ${i.name}\n` };
      }),
    );
}
