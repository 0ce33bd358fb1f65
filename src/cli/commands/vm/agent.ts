import type { Command } from 'commander';
import type { VmHealth, VmPorts } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { table } from '../../render/table.js';

/* Commands answered by the guest agent: vm health, vm ports. */

export function renderHealth(h: VmHealth): string {
  const up = h.uptime_s >= 3600 ? `${(h.uptime_s / 3600).toFixed(1)}h` : `${Math.round(h.uptime_s)}s`;
  return `${h.name}: healthy (${h.agent}, protocol ${h.protocol_version}, agent up ${up})\n`;
}

/** One row per socket; the endpoint is where the host reaches it, or "unpublished". */
export function renderPorts(p: VmPorts): string {
  const rows = p.ports.map((s) => [
    s.protocol,
    s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`,
    String(s.uid),
    s.endpoint ?? 'unpublished',
  ]);
  const note = p.truncated ? '(the guest has more sockets than the agent could list)\n' : '';
  const pub = (p.published ?? []).map((x) => `published ${x.spec}\n`).join('');
  return table(['PROTO', 'LISTEN', 'UID', 'ENDPOINT'], rows) + note + pub;
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('health')
    .description("ask the VM's guest agent whether the guest is healthy (exit status 0 if so)")
    .argument('<vm>', 'VM name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (ref: string) => {
        const h = await ctx().client.call('vm.health', { ref });
        return { json: h, text: renderHealth(h) };
      }),
    );
  vm.command('ports')
    .description("the guest's listening TCP and UDP sockets, and where the host reaches them")
    .argument('<vm>', 'VM name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (ref: string) => {
        const p = await ctx().client.call('vm.ports', { ref });
        return { json: p, text: renderPorts(p) };
      }),
    );
}
