import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';

interface PullOptions {
  name?: string;
  kernelRef?: string;
  kernel?: string;
  initrd?: string;
  modules?: string;
  size?: string;
  sha256?: string;
  installSshd?: boolean;
}

export function register(image: Command, ctx: () => CliContext, act: Act): void {
  image
    .command('pull')
    .description(
      'pull an image: a catalog name, an OCI reference, or a bundle URL (https:// or file://, with --sha256)',
    )
    .argument('<ref>', 'catalog name | registry/repo:tag | https://…/x.tar.zst')
    .option('--name <name>', 'local image name (default: derived from the reference)')
    .option('--kernel-ref <kernel>', 'boot it with this installed or catalog kernel')
    .option('--kernel <file>', 'boot it with this kernel file (imported as <name>-kernel)')
    .option('--initrd <file>', 'initrd for --kernel')
    .option('--modules <dir>', 'lib/modules/<release> directory for --kernel')
    .option('--size <size>', 'rootfs size (default: 1.5 × content, at least 1G)')
    .option('--sha256 <hex>', 'expected sha256 of a bundle')
    .option('--install-sshd', 'install openssh-server and systemd once, like upstream banger (needs network)')
    .addHelpText(
      'after',
      '\nExamples:\n  banger image pull 127.0.0.1:5000/team/dev:latest --name dev\n  banger image pull file:///srv/dev.tar.zst --sha256 3b1f…',
    )
    .action(
      act(async (ref: string, o: PullOptions) => {
        const c = ctx();
        const abs = (p: string): string => resolve(p);
        const i = await c.client.call(
          'image.pull',
          {
            ref,
            ...(o.name ? { name: o.name } : {}),
            ...(o.kernelRef ? { kernel_ref: o.kernelRef } : {}),
            ...(o.kernel ? { kernel: abs(o.kernel) } : {}),
            ...(o.initrd ? { initrd: abs(o.initrd) } : {}),
            ...(o.modules ? { modules: abs(o.modules) } : {}),
            ...(o.size ? { size: o.size } : {}),
            ...(o.sha256 ? { sha256: o.sha256 } : {}),
            ...(o.installSshd ? { install_sshd: true } : {}),
          },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { text: `pulled image ${i.name} (${i.id.slice(0, 12)})\n` };
      }),
    );
}
