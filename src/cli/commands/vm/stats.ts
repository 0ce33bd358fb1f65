import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('stats')
    .description('cpu and memory of the VMM process, and guest uptime')
    .argument('<vm...>', 'VM names or ids')
    .option('--json', 'print JSON')
    .action(async (refs: string[], o: { json?: boolean }) => {
      const c = ctx();
      const all = await Promise.all(refs.map((ref) => c.client.call('vm.stats', { ref })));
      if (o.json) c.out.write(`${JSON.stringify(all, null, 2)}\n`);
      else {
        const dash = (v: number | null, f: (n: number) => string): string => (v === null ? '-' : f(v));
        c.out.write(
          table(
            ['NAME', 'STATE', 'PID', 'CPU', 'RSS', 'UPTIME'],
            all.map((s) => [
              s.name,
              s.state,
              dash(s.pid, String),
              dash(s.cpu_seconds, (n) => `${n.toFixed(1)}s`),
              dash(s.rss_bytes, formatBytes),
              dash(s.guest_uptime_s, (n) => `${Math.round(n)}s`),
            ]),
          ),
        );
      }
      setCode(0);
    });
}
