import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { renderError } from '../../render/errors.js';

/** Deletes each ref; one bad ref does not stop the others; exit 1 if any failed. */
export async function deleteVms(c: CliContext, refs: readonly string[]): Promise<ExitCode> {
  const results = await Promise.allSettled(refs.map((ref) => c.client.call<'vm.delete', { name: string }>('vm.delete', { ref })));
  let failed = 0;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') c.out.write(`deleted ${r.value.name}\n`);
    else {
      failed++;
      c.err.write(renderError(r.reason, c.style).replace(/^banger: /, `banger: ${refs[i]}: `));
    }
  });
  return failed ? 1 : 0;
}

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('delete')
    .alias('rm')
    .description('stop and delete VMs with their disks')
    .argument('<vm...>', 'VM names or ids')
    .addHelpText('after', '\nExample:\n  banger vm delete calm-otter dev')
    .action(async (refs: string[]) => setCode(await deleteVms(ctx(), refs)));
}
