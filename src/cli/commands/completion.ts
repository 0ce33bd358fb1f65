import type { Command } from 'commander';
import { badRequest } from '../../errors.js';
import type { CliContext, ExitCode } from '../context.js';
import { bashCompletion, completionTree, zshCompletion } from '../render/completion.js';

export function register(program: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      '\nExamples:\n  source <(banger completion bash)\n  banger completion zsh > ~/.zsh/banger.zsh',
    )
    .action((shell: string) => {
      const tree = completionTree(program);
      if (shell === 'bash') ctx().out.write(bashCompletion(tree));
      else if (shell === 'zsh') ctx().out.write(zshCompletion(tree));
      else throw badRequest(`unknown shell "${shell}"`, 'use bash or zsh');
      setCode(0);
    });
  program
    .command('__names', { hidden: true })
    .argument('<kind>', 'vms, images or kernels')
    .action(async (kind: string) => {
      const c = ctx();
      const names =
        kind === 'vms'
          ? (await c.client.call('vm.list', {})).map((v) => v.name)
          : kind === 'images'
            ? (await c.client.call('image.list', {})).map((i) => i.name)
            : (await c.client.call('kernel.list', {})).map((k) => k.name);
      c.out.write(names.join('\n') + (names.length ? '\n' : ''));
      setCode(0);
    });
}
