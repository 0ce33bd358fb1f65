import type { Command } from 'commander';
import type { VmStats } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function renderStats(all: readonly VmStats[]): string {
  const dash = (v: number | null, f: (n: number) => string): string => (v === null ? '-' : f(v));
  return table(
    ['NAME', 'STATE', 'PID', 'CPU', 'RSS', 'UPTIME'],
    all.map((s) => [
      s.name,
      s.state,
      dash(s.pid, String),
      dash(s.cpu_seconds, (n) => `${n.toFixed(1)}s`),
      dash(s.rss_bytes, formatBytes),
      dash(s.guest_uptime_s, (n) => `${Math.round(n)}s`),
    ]),
  );
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('stats')
    .description('cpu and memory of the VMM process, and guest uptime')
    .argument('<vm...>', 'VM names or ids')
    .option('--json', 'print JSON')
    .action(
      act(async (refs: string[]) => {
        const c = ctx();
        const all = await Promise.all(refs.map((ref) => c.client.call('vm.stats', { ref })));
        return { json: all, text: renderStats(all) };
      }),
    );
}
