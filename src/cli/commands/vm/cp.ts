import type { Command } from 'commander';
import { badRequest } from '../../../errors.js';
import { scpArgv } from '../../../ssh/argv.js';
import { runAttached } from '../../../system/interactive.js';
import type { Act, CliContext } from '../../context.js';
import { getViaAgent, putViaAgent } from './cp-agent.js';

/** 'NAME:/path' → guest side; anything else is a host path. A bare 'C:' style drive never occurs on Linux. */
export function parseCpOperand(s: string): { vm?: string; path: string } {
  const m = /^([a-z0-9][a-z0-9-]{0,62}):(.*)$/.exec(s);
  return m ? { vm: m[1] as string, path: m[2] || '/root' } : { path: s };
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('cp')
    .description('copy files or directories between the host and a VM (modes kept; without sshd: one regular file)')
    .argument('<src>', 'host path or NAME:/guest/path')
    .argument('<dst>', 'host path or NAME:/guest/path')
    .addHelpText('after', '\nExamples:\n  banger vm cp ./f dev:/root/f\n  banger vm cp dev:/var/log/syslog .')
    .action(
      act(async (src: string, dst: string) => {
        const c = ctx();
        const a = parseCpOperand(src);
        const b = parseCpOperand(dst);
        if ((a.vm === undefined) === (b.vm === undefined)) {
          throw badRequest(
            `vm cp copies between the host and one VM: exactly one of ${JSON.stringify(src)} and ${JSON.stringify(dst)} must be NAME:/path`,
            'e.g. banger vm cp ./f dev:/root/f',
          );
        }
        const name = (a.vm ?? b.vm) as string;
        const info = await c.client.call('vm.ssh_info', { ref: name });
        if (!info.has_sshd && info.agent) {
          // No sshd in the image: one regular file through the guest agent.
          if (a.vm) await getViaAgent(c.client, name, a.path, b.path);
          else await putViaAgent(c.client, name, a.path, b.path);
          return {};
        }
        const remote = (p: string): string => `${info.user}@${info.host}:${p}`;
        const argv = scpArgv('scp', info, a.vm ? remote(a.path) : a.path, b.vm ? remote(b.path) : b.path);
        // scp has the terminal: its progress and errors go straight to it.
        const code = await runAttached(argv);
        return code === 0 ? {} : { code: 1, err: `banger: copying failed (scp exit ${code})\n` };
      }),
    );
}
