import type { Command } from 'commander';
import { badRequest } from '../../errors.js';
import type { Act, CliContext } from '../context.js';
import { bashCompletion, completionTree, zshCompletion } from '../render/completion.js';

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      '\nExamples:\n  source <(banger completion bash)\n  banger completion zsh > ~/.zsh/banger.zsh',
    )
    .action(
      act((shell: string) => {
        const tree = completionTree(program);
        if (shell === 'bash') return { text: bashCompletion(tree) };
        if (shell === 'zsh') return { text: zshCompletion(tree) };
        throw badRequest(`unknown shell "${shell}"`, 'use bash or zsh');
      }),
    );
  program
    .command('__names', { hidden: true })
    .argument('<kind>', 'vms, images or kernels')
    .action(
      act(async (kind: string) => {
        const c = ctx();
        const names =
          kind === 'vms'
            ? (await c.client.call('vm.list', {})).map((v) => v.name)
            : kind === 'images'
              ? (await c.client.call('image.list', {})).map((i) => i.name)
              : (await c.client.call('kernel.list', {})).map((k) => k.name);
        return { text: names.join('\n') + (names.length ? '\n' : '') };
      }),
    );
}
