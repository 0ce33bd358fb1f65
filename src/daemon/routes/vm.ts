import { constants as osConstants } from 'node:os';
import { formatSize } from '../../config/sizes.js';
import { badRequest } from '../../errors.js';
import type { VmService } from '../../services/vm/service.js';
import type { Routes } from '../server.js';

function checkSignal(sig: string | undefined): NodeJS.Signals {
  if (sig === undefined) return 'SIGKILL';
  if (!(sig in osConstants.signals)) throw badRequest(`unknown signal ${sig}`, 'e.g. --signal SIGTERM');
  return sig as NodeJS.Signals;
}

/**
 * TODO(merge): VmService.create/set take `disk_bytes` on the VM-service branch; until
 * then this turns the parsed bytes back into the size string it takes ("8G", read back exactly).
 */
function diskSizeString<T extends { disk_bytes?: number | undefined }>(
  p: T,
): Omit<T, 'disk_bytes'> & { disk_size?: string } {
  const { disk_bytes: bytes, ...rest } = p;
  return bytes === undefined ? rest : { ...rest, disk_size: formatSize(bytes) };
}

/** vm.*: straight to the VmService. */
export function vmRoutes(vms: VmService): Routes<'vm'> {
  return {
    'vm.create': (p, ctx) => vms.create(diskSizeString(p), ctx),
    'vm.list': () => vms.list(),
    'vm.resolve': (p) => vms.resolveMany(p.refs),
    'vm.start': (p, ctx) => vms.start(p.ref, ctx),
    'vm.stop': (p, ctx) => vms.stop(p.ref, ctx),
    'vm.restart': (p, ctx) => vms.restart(p.ref, ctx),
    'vm.kill': (p) => vms.kill(p.ref, checkSignal(p.signal)),
    'vm.set': (p, ctx) => vms.set(p.ref, diskSizeString(p), ctx),
    'vm.prune': (_p, ctx) => vms.prune(ctx),
    'vm.stats': (p) => vms.stats(p.ref),
    'vm.show': (p) => vms.show(p.ref),
    'vm.delete': (p, ctx) => vms.delete(p.ref, ctx),
    'vm.ssh_info': (p) => vms.sshInfo(p.ref),
    'vm.logs': (p) => vms.logs(p.ref, p.tail_bytes),
  };
}
