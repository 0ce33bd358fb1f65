import type { Command } from 'commander';
import type { Act, CliContext } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';
import { addVmSpecFlags, vmSpecParams, type VmSpecFlags } from './spec.js';

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  addVmSpecFlags(vm.command('create').description('create a VM (and start it unless --no-start)'))
    .option('--no-start', 'create the disks only; start later with `banger vm start`')
    .addHelpText('after', '\nExample:\n  banger vm create --name dev --no-start')
    .action(
      act(async (o: VmSpecFlags & { start: boolean }) => {
        const c = ctx();
        const v = await c.client.call(
          'vm.create',
          { ...vmSpecParams(o), start: o.start },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        return { text: `${v.name}\n` };
      }),
    );
}
