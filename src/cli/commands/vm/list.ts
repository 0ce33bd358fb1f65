import type { Command } from 'commander';
import type { VmView } from '../../../api/methods.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

export function renderVmTable(vms: readonly VmView[]): string {
  if (vms.length === 0) return 'no VMs (create one with `banger vm run`)\n';
  return table(
    ['NAME', 'STATE', 'IMAGE', 'VCPU', 'MEMORY', 'DISK', 'SSH', 'ID'],
    vms.map((v) => [
      v.name,
      v.state,
      v.image,
      String(v.vcpu),
      `${v.memory_mib} MiB`,
      formatBytes(v.disk_bytes),
      v.ssh ?? '-',
      v.id.slice(0, 12),
    ]),
  );
}

export async function listVms(c: CliContext): Promise<CommandResult> {
  const vms = await c.client.call('vm.list', {});
  return { json: vms, text: renderVmTable(vms) };
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('list')
    .alias('ls')
    .description('list VMs')
    .option('--json', 'print JSON')
    .action(act(() => listVms(ctx())));
}
