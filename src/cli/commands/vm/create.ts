import type { Command } from 'commander';
import type { CliContext, ExitCode } from '../../context.js';
import { progressPrinter } from '../../render/progress.js';
import { parseIntFlag } from './run.js';

export function register(vm: Command, ctx: () => CliContext, setCode: (c: ExitCode) => void): void {
  vm.command('create')
    .description('create a VM (and start it unless --no-start)')
    .option('--name <name>', 'VM name (a-z, 0-9, -); generated when omitted')
    .option('--image <image>', 'image name')
    .option('--vcpu <n>', 'virtual CPUs')
    .option('--memory <size>', 'memory, MiB or with a unit (2G)')
    .option('--disk-size <size>', 'size of the /root work disk')
    .option('--nat', 'allow the guest outbound network access')
    .option('--no-start', 'create the disks only; start later with `banger vm start`')
    .addHelpText('after', '\nExample:\n  banger vm create --name dev --no-start')
    .action(
      async (o: {
        name?: string;
        image?: string;
        vcpu?: string;
        memory?: string;
        diskSize?: string;
        nat?: boolean;
        start: boolean;
      }) => {
        const c = ctx();
        const vcpu = parseIntFlag('--vcpu', o.vcpu);
        const v = await c.client.call(
          'vm.create',
          {
            ...(o.name === undefined ? {} : { name: o.name }),
            ...(o.image === undefined ? {} : { image: o.image }),
            ...(vcpu === undefined ? {} : { vcpu }),
            ...(o.memory === undefined ? {} : { memory: o.memory }),
            ...(o.diskSize === undefined ? {} : { disk_size: o.diskSize }),
            nat: o.nat ?? false,
            start: o.start,
          },
          { onEvent: progressPrinter(c.err, c.style) },
        );
        c.out.write(`${v.name}\n`);
        setCode(0);
      },
    );
}
