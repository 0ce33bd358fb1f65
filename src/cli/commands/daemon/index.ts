import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';

export function register(program: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  const d = program.command('daemon').description('manage bangerd, the background daemon');
  d.command('status')
    .description('show whether bangerd runs, its pid and version')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const c = ctx();
      const st = await c.client.callNoStart('daemon.status', {});
      if (opts.json) c.out.write(`${JSON.stringify(st ?? { running: false }, null, 2)}\n`);
      else if (!st) c.out.write('bangerd is not running (any banger command starts it)\n');
      else
        c.out.write(
          `bangerd is running: pid ${st.pid}, version ${st.version}, up ${st.uptime_s}s, ${st.operations} operation(s) in flight\nsocket: ${st.socket}\n`,
        );
      setCode(0);
    });
  d.command('stop')
    .description('stop bangerd (running VMs keep running)')
    .action(async () => {
      const c = ctx();
      const st = await c.client.callNoStart('daemon.stop', {});
      c.out.write(st ? 'bangerd stopped\n' : 'bangerd was not running\n');
      setCode(0);
    });
  d.command('logs')
    .description("print bangerd's log")
    .action(async () => {
      const c = ctx();
      c.out.write(await readFile(c.paths.daemonLog, 'utf8').catch(() => ''));
      setCode(0);
    });
}
