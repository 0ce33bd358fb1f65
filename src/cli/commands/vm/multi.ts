import type { Command } from 'commander';
import type { ResolvedRef, VmView } from '../../../api/methods.js';
import type { Act, CliContext, CommandResult } from '../../context.js';
import { renderError } from '../../render/errors.js';
import { progressPrinter } from '../../render/progress.js';
import { renderTimings } from '../../render/timings.js';

/** `--timings`: the spans of the boot that just finished, under the VM's name. */
export const timingsOf = (v: VmView): string =>
  v.boot ? `boot of ${v.name}:\n${renderTimings(v.boot)}` : `no boot timings recorded for ${v.name}\n`;

/**
 * Multi-target verbs: refs are resolved against one snapshot, the operation
 * runs on every VM concurrently, results are reported in first-seen order
 * (done ones on stdout, failed ones on stderr), and the exit code is 1 if any
 * target failed.
 */
export async function forEachVm(
  c: CliContext,
  refs: readonly string[],
  verb: string,
  call: (id: string) => Promise<VmView | { name: string }>,
): Promise<CommandResult> {
  const resolved = await c.client.call('vm.resolve', { refs: [...refs] });
  const seen = new Set<string>();
  const targets = resolved.filter((r) => !r.id || (!seen.has(r.id) && seen.add(r.id)));
  const results = await Promise.allSettled(targets.map((t) => (t.id ? call(t.id) : Promise.reject(t.error))));
  let text = '';
  let err = '';
  results.forEach((r, i) => {
    const t = targets[i] as ResolvedRef;
    if (r.status === 'fulfilled') {
      text += `${verb} ${r.value.name}${'state' in r.value ? ` (${r.value.state})` : ''}\n`;
      return;
    }
    const reason = r.reason as { message?: string; hint?: string } | Error;
    const msg =
      reason instanceof Error
        ? renderError(reason, c.style).replace(/^banger: /, '')
        : `${reason.message}\n${reason.hint ? `hint: ${reason.hint}\n` : ''}`;
    err += `banger: ${t.ref}: ${msg}`;
  });
  return { code: err ? 1 : 0, text, err };
}

export function registerSimple(
  vm: Command,
  ctx: () => CliContext,
  act: Act,
  name: string,
  method: 'vm.start' | 'vm.stop' | 'vm.restart',
  verb: string,
  description: string,
): void {
  const cmd = vm
    .command(name)
    .description(description)
    .argument('<vm...>', 'VM names or ids')
    .addHelpText('after', `\nExample:\n  banger vm ${name} dev other-vm`);
  if (method !== 'vm.stop') cmd.option('--timings', 'print where the seconds of the boot went (on stderr)');
  cmd.action(
    act(async (refs: string[], o: { timings?: boolean }) => {
      const c = ctx();
      const onEvent = refs.length === 1 ? progressPrinter(c.err, c.style) : undefined;
      let timings = '';
      const r = await forEachVm(c, refs, verb, async (id) => {
        const v = await c.client.call(method, { ref: id }, onEvent ? { onEvent } : {});
        if (o.timings) timings += timingsOf(v);
        return v;
      });
      return { ...r, err: `${timings}${r.err ?? ''}` };
    }),
  );
}
