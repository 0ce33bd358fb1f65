import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import type { VmView } from '../../../api/methods.js';
import { badRequest } from '../../../errors.js';
import type { Act, CliContext } from '../../context.js';
import type { Style } from '../../render/style.js';
import { keyValues } from '../../render/table.js';
import { renderTimings } from '../../render/timings.js';
import { forEachVm, registerSimple } from './multi.js';
import { addSizingFlags, sizingParams, type SizingFlags } from './spec.js';

export function renderVm(v: VmView, style: Style): string {
  const rows: [string, string][] = [
    ['name', v.name],
    ['id', v.id],
    ['state', v.state],
    ['image', v.image],
    ['vcpu', String(v.vcpu)],
    ['memory', `${v.memory_mib} MiB`],
    ['disk', `${v.disk_bytes} bytes`],
    ['vmm', `${v.vmm}${v.vmm_reason ? ` (${v.vmm_reason})` : ''}`],
    ['accel', `${v.accel}${v.accel_reason ? ` (${v.accel_reason})` : ''}`],
    ['network', `${v.network_mode}${v.nat ? ' + nat' : ''}${v.ip ? `, ${v.ip} (${v.name}.vm)` : ''}`],
    ['ssh', v.ssh ?? '-'],
    ['published', (v.published ?? []).map((p) => p.spec).join(', ') || '-'],
    ['root disk', v.disk_strategy],
    ['pid', v.pid === null ? '-' : String(v.pid)],
    [
      'workspace',
      v.workspace
        ? `${v.workspace.guest_path} from ${v.workspace.host_path}${v.workspace.head ? ` at ${v.workspace.head.slice(0, 12)}` : ''} (${v.workspace.prepared_at})`
        : '-',
    ],
    ['created', v.created_at],
    ...(v.problems ?? []).map((p): [string, string] => ['problem', style.yellow(p)]),
  ];
  return keyValues(rows) + (v.boot ? `\nlast boot (${v.boot.at}):\n${renderTimings(v.boot)}` : '');
}

export function register(vm: Command, ctx: () => CliContext, act: Act): void {
  registerSimple(vm, ctx, act, 'start', 'vm.start', 'started', 'start stopped VMs (waits for ssh)');
  registerSimple(vm, ctx, act, 'stop', 'vm.stop', 'stopped', 'stop VMs: guest poweroff, then kill after 10 s');
  registerSimple(vm, ctx, act, 'restart', 'vm.restart', 'restarted', 'stop then start VMs (a fresh boot)');
  for (const [name, verb, description] of [
    ['pause', 'paused', 'stop the vCPUs of running VMs (processes, memory and devices kept; no CPU used)'],
    ['resume', 'resumed', 'let paused VMs run again (their clock is set to the host clock)'],
  ] as const)
    vm.command(name)
      .description(description)
      .argument('<vm...>', 'VM names or ids')
      .action(
        act((refs: string[]) => {
          const c = ctx();
          return forEachVm(c, refs, verb, (id) => c.client.call(`vm.${name}`, { ref: id }));
        }),
      );
  vm.command('kill')
    .description('kill the VMM of VMs at once (no guest shutdown)')
    .argument('<vm...>', 'VM names or ids')
    .option('--signal <sig>', 'signal for the VMM process', 'SIGKILL')
    .action(
      act((refs: string[], o: { signal: string }) => {
        const c = ctx();
        const up = o.signal.toUpperCase();
        const sig = up.startsWith('SIG') ? up : `SIG${up}`;
        if (!(sig in osConstants.signals))
          throw badRequest(`unknown signal ${JSON.stringify(o.signal)}`, 'e.g. --signal SIGTERM (see `kill -l`)');
        return forEachVm(c, refs, 'killed', (id) => c.client.call('vm.kill', { ref: id, signal: sig }));
      }),
    );
  addSizingFlags(
    vm
      .command('set')
      .description('change vcpu, memory or disk size of stopped VMs')
      .argument('<vm...>', 'VM names or ids'),
    'grow the /root work disk to this size',
  )
    .addHelpText('after', '\nExample:\n  banger vm set dev --vcpu 2 --memory 4G')
    .action(
      act((refs: string[], o: SizingFlags) => {
        const c = ctx();
        const params = sizingParams(o);
        return forEachVm(c, refs, 'updated', (id) => c.client.call('vm.set', { ref: id, ...params }));
      }),
    );
  vm.command('show')
    .description('show one VM')
    .argument('<vm>', 'VM name or id')
    .option('--json', 'print JSON')
    .action(
      act(async (ref: string) => {
        const c = ctx();
        const v = await c.client.call('vm.show', { ref });
        return { json: v, text: renderVm(v, c.style) };
      }),
    );
  vm.command('prune')
    .description('delete every VM that is not running')
    .option('-f, --force', 'do not ask')
    .action(
      act(async (o: { force?: boolean }) => {
        if (!o.force)
          return {
            code: 1,
            err: 'banger: vm prune deletes every stopped VM with its disks\nhint: rerun with -f to confirm\n',
          };
        const r = await ctx().client.call('vm.prune', {});
        return { text: r.deleted.length ? r.deleted.map((n) => `deleted ${n}\n`).join('') : 'nothing to prune\n' };
      }),
    );
}
