import type { Command } from 'commander';
import type { VmPublished } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';

/* vm publish / vm unpublish: ports of a VM, on the running VM now and at every start (issue 14). */

export function renderPublished(r: VmPublished): string {
  if (r.published.length === 0) return `${r.name}: no published ports\n`;
  return r.published
    .map((p) => `${r.name}: ${p.address}:${p.host_port} -> guest ${p.guest_port}/${p.protocol}\n`)
    .join('');
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('publish')
    .description("forward host ports to a VM's guest ports (now if it runs, and at every start)")
    .argument('<vm>', 'VM name or id')
    .argument('<spec...>', '[ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp] (ADDR defaults to 127.0.0.1)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  banger vm publish dev 8080:80 127.0.0.1:5353:53/udp')
    .action(
      act(async (ref: string, specs: string[]) => {
        const r = await ctx().client.call('vm.publish', { ref, ports: specs });
        return { json: r, text: renderPublished(r) };
      }),
    );
  vm.command('unpublish')
    .description('stop forwarding host ports to a VM')
    .argument('<vm>', 'VM name or id')
    .argument('<spec...>', '[ADDR:]HOST_PORT[:GUEST_PORT][/tcp|/udp], as `vm show` lists them')
    .option('--json', 'print JSON')
    .action(
      act(async (ref: string, specs: string[]) => {
        const r = await ctx().client.call('vm.unpublish', { ref, ports: specs });
        return { json: r, text: renderPublished(r) };
      }),
    );
}
