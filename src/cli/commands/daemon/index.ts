import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { DaemonStatus } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';

export function renderStatus(st: DaemonStatus | undefined): string {
  if (!st) return 'bangerd is not running (any banger command starts it)\n';
  return `bangerd is running: pid ${st.pid}, version ${st.version}, up ${st.uptime_s}s, ${st.operations} operation(s) in flight\nsocket: ${st.socket}\n`;
}

export function register(program: Command, ctx: () => CliContext, act: Act): void {
  const d = program.command('daemon').description('manage bangerd, the background daemon');
  d.command('status')
    .description('show whether bangerd runs, its pid and version')
    .option('--json', 'print JSON')
    .action(
      act(async () => {
        const st = await ctx().client.callNoStart('daemon.status', {});
        return { json: st ?? { running: false }, text: renderStatus(st) };
      }),
    );
  d.command('stop')
    .description('stop bangerd (running VMs keep running)')
    .action(
      act(async () => {
        const st = await ctx().client.callNoStart('daemon.stop', {});
        return { text: st ? 'bangerd stopped\n' : 'bangerd was not running\n' };
      }),
    );
  d.command('logs')
    .description("print bangerd's log")
    .action(act(async () => ({ text: await readFile(ctx().paths.daemonLog, 'utf8').catch(() => '') })));
}
