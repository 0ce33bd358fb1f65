import type { Command } from 'commander';
import type { VmView } from '../../../api/methods.js';
import type { CliContext, ExitCode } from '../../context.js';
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

export async function listVms(c: CliContext, opts: { json?: boolean }): Promise<ExitCode> {
  const vms = await c.client.call('vm.list', {});
  c.out.write(opts.json ? `${JSON.stringify(vms, null, 2)}\n` : renderVmTable(vms));
  return 0;
}

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('list')
    .alias('ls')
    .description('list VMs')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => setCode(await listVms(ctx(), opts)));
}
