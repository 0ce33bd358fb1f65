import type { Command } from 'commander';
import type { ResolvedRef, VmView } from '../../../api/methods.js';
import type { Method } from '../../../api/methods.js';
import type { CliContext, ExitCode } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { progressPrinter } from '../../render/progress.js';

/**
 * Multi-target verbs: refs are resolved against one snapshot, the operation
 * runs on every VM concurrently, results print in first-seen order, and the
 * exit code is 1 if any target failed.
 */
export async function forEachVm(
  c: CliContext,
  refs: readonly string[],
  verb: string,
  call: (id: string) => Promise<VmView | { name: string }>,
): Promise<ExitCode> {
  const resolved = await c.client.call('vm.resolve', { refs: [...refs] });
  const seen = new Set<string>();
  const targets = resolved.filter((r) => !r.id || (!seen.has(r.id) && seen.add(r.id)));
  const results = await Promise.allSettled(targets.map((t) => (t.id ? call(t.id) : Promise.reject(t.error))));
  let failed = 0;
  results.forEach((r, i) => {
    const t = targets[i] as ResolvedRef;
    if (r.status === 'fulfilled') {
      c.out.write(`${verb} ${r.value.name}${'state' in r.value ? ` (${r.value.state})` : ''}\n`);
      return;
    }
    failed++;
    const reason = r.reason as { message?: string; hint?: string } | Error;
    const msg =
      reason instanceof Error
        ? renderError(reason, c.style).replace(/^banger: /, '')
        : `${reason.message}\n${reason.hint ? `hint: ${reason.hint}\n` : ''}`;
    c.err.write(`banger: ${t.ref}: ${msg}`);
  });
  return failed ? 1 : 0;
}

type Simple = 'vm.start' | 'vm.stop' | 'vm.restart';

export function registerSimple(
  vm: Command,
  ctx: () => CliContext,
  setCode: (c: ExitCode) => void,
  name: string,
  method: Simple & Method,
  verb: string,
  description: string,
): void {
  vm.command(name)
    .description(description)
    .argument('<vm...>', 'VM names or ids')
    .addHelpText('after', `\nExample:\n  banger vm ${name} dev other-vm`)
    .action(async (refs: string[]) => {
      const c = ctx();
      const onEvent = refs.length === 1 ? progressPrinter(c.err, c.style) : undefined;
      setCode(await forEachVm(c, refs, verb, (id) => c.client.call(method, { ref: id }, onEvent ? { onEvent } : {})));
    });
}
