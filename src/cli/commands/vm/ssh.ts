import type { Command } from 'commander';
import { sshArgv } from '../../../ssh/argv.js';
import { sshFailure } from '../../../ssh/failure.js';
import { shellJoin } from '../../../ssh/quote.js';
import { runAttached } from '../../../system/interactive.js';
import type { Act, CliContext } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { runAgentSession } from '../../session/agent-exec.js';
import { collect, EXIT_BANGER_FAILED } from './run.js';
import { parseEnvFlags, withEnv } from '../../../ssh/env.js';

export function register(vm: Command, ctx: () => CliContext, act: Act, guestCmd: () => string[] | undefined): void {
  vm.command('ssh')
    .description('open a shell in a running VM, or run a command there (after --)')
    .argument('<vm>', 'VM name or id')
    .option('-e, --env <KEY=VAL>', 'environment variable for the command (repeatable)', collect)
    .addHelpText('after', '\nExamples:\n  banger vm ssh dev\n  banger vm ssh dev -- uname -a')
    .action(
      act(async (ref: string, o: { env?: string[] }) => {
        const c = ctx();
        const cmd = guestCmd();
        const env = parseEnvFlags(o.env ?? []);
        const info = await c.client.call('vm.ssh_info', { ref });
        if (!info.has_sshd) {
          // No sshd in the guest: the same session through its agent.
          const s = await runAgentSession(c.client, {
            ref,
            argv: cmd?.length ? cmd : undefined,
            env,
            tty: c.stdinIsTty,
          });
          return s.interrupted ? { code: 130, err: 'banger: interrupted\n' } : { code: s.code };
        }
        const argv = sshArgv(
          'ssh',
          info,
          cmd && cmd.length
            ? { tty: c.stdinIsTty, remoteCommand: withEnv(shellJoin(cmd), env) }
            : { tty: c.stdinIsTty },
        );
        const code = await runAttached(argv);
        if (code === 255)
          return {
            code: cmd && cmd.length ? EXIT_BANGER_FAILED : 1,
            err: renderError(await sshFailure(c.runner, info), c.style),
          };
        return { code };
      }),
    );
}
