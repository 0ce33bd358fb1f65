import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import { badRequest } from '../../../errors.js';
import type { CliContext, ExitCode } from '../../context.js';
import { keyValues } from '../../render/table.js';
import { forEachVm, registerSimple } from './multi.js';
import { parseIntFlag } from './run.js';

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  registerSimple(vm, ctx, setCode, 'start', 'vm.start', 'started', 'start stopped VMs (waits for ssh)');
  registerSimple(vm, ctx, setCode, 'stop', 'vm.stop', 'stopped', 'stop VMs: guest poweroff, then kill after 10 s');
  registerSimple(vm, ctx, setCode, 'restart', 'vm.restart', 'restarted', 'stop then start VMs (a fresh boot)');
  vm.command('kill')
    .description('kill the VMM of VMs at once (no guest shutdown)')
    .argument('<vm...>', 'VM names or ids')
    .option('--signal <sig>', 'signal for the VMM process', 'SIGKILL')
    .action(async (refs: string[], o: { signal: string }) => {
      const c = ctx();
      const sig = o.signal.toUpperCase().startsWith('SIG') ? o.signal.toUpperCase() : `SIG${o.signal.toUpperCase()}`;
      if (!(sig in osConstants.signals))
        throw badRequest(`unknown signal ${JSON.stringify(o.signal)}`, 'e.g. --signal SIGTERM (see `kill -l`)');
      setCode(await forEachVm(c, refs, 'killed', (id) => c.client.call('vm.kill', { ref: id, signal: sig })));
    });
  vm.command('set')
    .description('change vcpu, memory or disk size of stopped VMs')
    .argument('<vm...>', 'VM names or ids')
    .option('--vcpu <n>', 'virtual CPUs')
    .option('--memory <size>', 'memory, MiB or with a unit (2G)')
    .option('--disk-size <size>', 'grow the /root work disk to this size')
    .addHelpText('after', '\nExample:\n  banger vm set dev --vcpu 2 --memory 4G')
    .action(async (refs: string[], o: { vcpu?: string; memory?: string; diskSize?: string }) => {
      const c = ctx();
      const vcpu = parseIntFlag('--vcpu', o.vcpu);
      const params = {
        ...(vcpu === undefined ? {} : { vcpu }),
        ...(o.memory === undefined ? {} : { memory: o.memory }),
        ...(o.diskSize === undefined ? {} : { disk_size: o.diskSize }),
      };
      setCode(await forEachVm(c, refs, 'updated', (id) => c.client.call('vm.set', { ref: id, ...params })));
    });
  vm.command('show')
    .description('show one VM')
    .argument('<vm>', 'VM name or id')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: { json?: boolean }) => {
      const c = ctx();
      const v = await c.client.call('vm.show', { ref });
      if (o.json) c.out.write(`${JSON.stringify(v, null, 2)}\n`);
      else {
        const rows: [string, string][] = [
          ['name', v.name],
          ['id', v.id],
          ['state', v.state],
          ['image', v.image],
          ['vcpu', String(v.vcpu)],
          ['memory', `${v.memory_mib} MiB`],
          ['disk', `${v.disk_bytes} bytes`],
          ['vmm', `${v.vmm} (${v.accel}${v.accel_reason ? `: ${v.accel_reason}` : ''})`],
          ['network', `${v.network_mode}${v.nat ? ' + nat' : ''}`],
          ['ssh', v.ssh ?? '-'],
          ['root disk', v.disk_strategy],
          ['pid', v.pid === null ? '-' : String(v.pid)],
          ['created', v.created_at],
          ...(v.problems ?? []).map((p): [string, string] => ['problem', c.style.yellow(p)]),
        ];
        c.out.write(keyValues(rows));
      }
      setCode(0);
    });
  vm.command('prune')
    .description('delete every VM that is not running')
    .option('-f, --force', 'do not ask')
    .action(async (o: { force?: boolean }) => {
      const c = ctx();
      if (!o.force) {
        c.err.write('banger: vm prune deletes every stopped VM with its disks\nhint: rerun with -f to confirm\n');
        setCode(1);
        return;
      }
      const r = await c.client.call('vm.prune', {});
      c.out.write(r.deleted.length ? r.deleted.map((n) => `deleted ${n}\n`).join('') : 'nothing to prune\n');
      setCode(0);
    });
}
