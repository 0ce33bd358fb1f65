import { constants as osConstants } from 'node:os';
import { badRequest } from '../../errors.js';
import type { VmExec } from '../../services/vm/exec.js';
import type { VmFiles } from '../../services/vm/files.js';
import type { VmService } from '../../services/vm/service.js';
import type { VmWorkspaces } from '../../services/vm/workspace.js';
import type { Routes } from '../server.js';

function checkSignal(sig: string | undefined): NodeJS.Signals {
  if (sig === undefined) return 'SIGKILL';
  if (!(sig in osConstants.signals)) throw badRequest(`unknown signal ${sig}`, 'e.g. --signal SIGTERM');
  return sig as NodeJS.Signals;
}

/** vm.*: straight to the VmService. */
export function vmRoutes(vms: VmService, exec: VmExec, files: VmFiles, ws: VmWorkspaces): Routes<'vm'> {
  return {
    'vm.create': (p, ctx) => vms.create(p, ctx),
    'vm.list': () => vms.list(),
    'vm.resolve': (p) => vms.resolveMany(p.refs),
    'vm.start': (p, ctx) => vms.start(p.ref, ctx),
    'vm.stop': (p, ctx) => vms.stop(p.ref, ctx),
    'vm.restart': (p, ctx) => vms.restart(p.ref, ctx),
    'vm.kill': (p) => vms.kill(p.ref, checkSignal(p.signal)),
    'vm.set': (p, ctx) => vms.set(p.ref, p, ctx),
    'vm.prune': (_p, ctx) => vms.prune(ctx),
    'vm.stats': (p) => vms.stats(p.ref),
    'vm.health': (p) => vms.health(p.ref),
    'vm.ports': (p) => vms.ports(p.ref),
    'vm.show': (p) => vms.show(p.ref),
    'vm.delete': (p, ctx) => vms.delete(p.ref, ctx),
    'vm.ssh_info': (p) => exec.sessionInfo(p.ref),
    'vm.workspace_set': (p) => ws.set(p),
    'vm.exec': (p, ctx, ch) => exec.exec(p, ctx, ch),
    'vm.file_put': (p, ctx, ch) => files.put(p, ctx, ch),
    'vm.file_get': (p, ctx, ch) => files.get(p, ctx, ch),
    'vm.logs': (p) => vms.logs(p.ref, p.tail_bytes),
  };
}
