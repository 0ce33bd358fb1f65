import type { Command } from 'commander';
import type { WireParams } from '../../../api/methods.js';
import { badRequest } from '../../../errors.js';

/** The sizing flags (`vm set` has only these), as commander hands them over. */
export interface SizingFlags {
  vcpu?: string;
  memory?: string;
  diskSize?: string;
}

/** The VM-spec flags of `vm create` and `vm run`. */
export interface VmSpecFlags extends SizingFlags {
  name?: string;
  image?: string;
  nat?: boolean;
  publish?: string[];
  cold?: boolean;
  fromSnapshot?: string;
}

/** Strict integer flag parsing: '2' ok; '2x', '', '1.5' rejected. */
export function parseIntFlag(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw badRequest(`invalid ${flag} "${v}": expected a whole number`, `e.g. ${flag} 2`);
  return Number(v);
}

/** --vcpu, --memory, --disk-size (the daemon parses the sizes). */
export function addSizingFlags(cmd: Command, diskHelp: string): Command {
  return cmd
    .option('--vcpu <n>', 'virtual CPUs')
    .option('--memory <size>', 'memory, MiB or with a unit (2G)')
    .option('--disk-size <size>', diskHelp);
}

/** The VM-spec flags `vm create` and `vm run` share. */
export function addVmSpecFlags(cmd: Command): Command {
  cmd
    .option('--name <name>', 'VM name (a-z, 0-9, -); generated when omitted')
    .option('--image <image>', 'image name (default: debian-bookworm, built on first use)');
  return addSizingFlags(cmd, 'size of the /root work disk (e.g. 8G)')
    .option('--nat', 'allow the guest outbound network access')
    .option('--cold', 'boot cold even when a warm-start template of the image is current')
    .option(
      '--from-snapshot <name>',
      'restore a snapshot: its image, sizes, files and running processes (`vm snapshot`)',
    )
    .option(
      '-p, --publish <spec>',
      'publish a guest port: [ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp], ADDR 127.0.0.1 unless given (repeatable)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    );
}

export function sizingParams(o: SizingFlags): Pick<WireParams<'vm.set'>, 'vcpu' | 'memory' | 'disk_size'> {
  const vcpu = parseIntFlag('--vcpu', o.vcpu);
  return {
    ...(vcpu === undefined ? {} : { vcpu }),
    ...(o.memory === undefined ? {} : { memory: o.memory }),
    ...(o.diskSize === undefined ? {} : { disk_size: o.diskSize }),
  };
}

/** vm.create's params from the shared flags (all but `start`). */
export function vmSpecParams(o: VmSpecFlags): Omit<WireParams<'vm.create'>, 'start'> {
  return {
    ...(o.name === undefined ? {} : { name: o.name }),
    ...(o.image === undefined ? {} : { image: o.image }),
    ...sizingParams(o),
    nat: o.nat ?? false,
    ...(o.publish === undefined ? {} : { publish: o.publish }),
    ...(o.cold ? { cold: true } : {}),
    ...(o.fromSnapshot === undefined ? {} : { from_snapshot: o.fromSnapshot }),
  };
}
