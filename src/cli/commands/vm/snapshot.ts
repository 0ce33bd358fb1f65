import type { Command } from 'commander';
import type { SnapshotView } from '../../../api/methods.js';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';
import { formatBytes, table } from '../../render/table.js';

/* vm snapshot create|list|rm and vm fork (issue 18). */

export function renderSnapshots(list: readonly SnapshotView[]): string {
  if (list.length === 0) return 'no snapshots (make one with `banger vm snapshot create VM NAME`)\n';
  return table(
    ['NAME', 'VM', 'IMAGE', 'VCPU', 'MEMORY', 'DISK', 'CREATED'],
    list.map((s) => [
      s.name,
      s.vm,
      s.image,
      String(s.vcpu),
      `${s.memory_mib} MiB`,
      formatBytes(s.disk_bytes),
      s.created_at,
    ]),
  );
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  const snap = vm.command('snapshot').description("save a running VM's memory, processes and disks; list, remove");
  snap
    .command('create')
    .description('snapshot a running VM (it stops for the save, then runs on)')
    .argument('<vm>', 'VM name or id')
    .argument('<name>', 'snapshot name (a-z, 0-9, -)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExample:\n  banger vm snapshot create dev before-upgrade\n  banger vm run --from-snapshot before-upgrade',
    )
    .action(
      act(async (ref: string, name: string) => {
        const c = ctx();
        const s = await c.client.call(
          'vm.snapshot_create',
          { ref, name },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { json: s, text: `${s.name}\n` };
      }),
    );
  snap
    .command('list')
    .description('list snapshots')
    .option('--json', 'print JSON')
    .action(
      act(async () => {
        const list = await ctx().client.call('vm.snapshot_list', {});
        return { json: list, text: renderSnapshots(list) };
      }),
    );
  snap
    .command('rm')
    .description('remove a snapshot (VMs made from it keep running: the disk layer they stand on stays)')
    .argument('<name>', 'snapshot name')
    .action(
      act(async (name: string) => {
        const r = await ctx().client.call('vm.snapshot_rm', { name });
        return { json: r, text: `${r.name}\n` };
      }),
    );
  vm.command('fork')
    .description("a new VM from a running VM's current state: its files and running processes, its own identity")
    .argument('<vm>', 'VM name or id')
    .argument('<new-name>', 'name of the new VM')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  banger vm fork dev dev-try2')
    .action(
      act(async (ref: string, name: string) => {
        const c = ctx();
        const v = await c.client.call('vm.fork', { ref, name }, { onEvent: progressPrinter(c.err, c.style) });
        return { json: v, text: `${v.name}\n` };
      }),
    );
}
