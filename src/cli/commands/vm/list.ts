import type { Command } from 'commander';
import { homedir } from 'node:os';
import type { VmView } from '../../../api/methods.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { formatBytes, table } from '../../render/table.js';

/** The WORKSPACE cell: the host checkout (home as ~) and the commit it was prepared at. */
export function workspaceCell(v: VmView, home = homedir()): string {
  const w = v.workspace;
  if (!w) return '-';
  const path =
    home && (w.host_path === home || w.host_path.startsWith(`${home}/`))
      ? `~${w.host_path.slice(home.length)}`
      : w.host_path;
  return w.head ? `${path}@${w.head.slice(0, 7)}` : path;
}

export function renderVmTable(vms: readonly VmView[]): string {
  if (vms.length === 0) return 'no VMs (create one with `banger vm run`)\n';
  return table(
    ['NAME', 'STATE', 'IMAGE', 'VCPU', 'MEMORY', 'DISK', 'SSH', 'WORKSPACE', 'ID'],
    vms.map((v) => [
      v.name,
      v.state,
      v.image,
      String(v.vcpu),
      `${v.memory_mib} MiB`,
      formatBytes(v.disk_bytes),
      v.ssh ?? '-',
      workspaceCell(v),
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
