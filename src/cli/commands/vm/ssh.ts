import type { Command } from 'commander';
import type { SshInfo } from '../../../api/methods.js';
import { sshArgv } from '../../../ssh/argv.js';
import { shellJoin } from '../../../ssh/quote.js';
import { runAttached } from '../../../system/interactive.js';
import type { CliContext, ExitCode } from '../../context.js';
import { EXIT_BANGER_FAILED } from './run.js';

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void, guestCmd: () => string[] | undefined): void {
  vm.command('ssh')
    .description('open a shell in a running VM, or run a command there (after --)')
    .argument('<vm>', 'VM name or id')
    .addHelpText('after', '\nExamples:\n  banger vm ssh dev\n  banger vm ssh dev -- uname -a')
    .action(async (ref: string) => {
      const c = ctx();
      const cmd = guestCmd();
      const info = await c.client.call<'vm.ssh_info', SshInfo>('vm.ssh_info', { ref });
      const argv = sshArgv('ssh', info, cmd && cmd.length ? { tty: c.stdinIsTty, remoteCommand: shellJoin(cmd) } : { tty: c.stdinIsTty });
      const code = await runAttached(argv);
      if (code === 255) {
        c.err.write(`banger: the ssh connection to VM "${info.name}" failed\nhint: see \`banger vm logs ${info.name}\`\n`);
        setCode(cmd && cmd.length ? EXIT_BANGER_FAILED : 1);
        return;
      }
      setCode(code);
    });
}
