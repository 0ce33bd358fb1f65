import type { Command } from 'commander';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { forEachVm } from './multi.js';

/** Deletes each ref; one bad ref does not stop the others; exit 1 if any failed. */
export function deleteVms(c: CliContext, refs: readonly string[]): Promise<CommandResult> {
  return forEachVm(c, refs, 'deleted', (id) => c.client.call('vm.delete', { ref: id }));
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  vm.command('delete')
    .alias('rm')
    .description('stop and delete VMs with their disks')
    .argument('<vm...>', 'VM names or ids')
    .addHelpText('after', '\nExample:\n  banger vm delete calm-otter dev')
    .action(act((refs: string[]) => deleteVms(ctx(), refs)));
}
