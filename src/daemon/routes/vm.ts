import { constants as osConstants } from 'node:os';
import type { VmView } from '../../api/views.js';
import { badRequest } from '../../errors.js';
import type { OpContext } from '../../services/context.js';
import type { VmExec } from '../../services/vm/exec.js';
import type { VmFiles } from '../../services/vm/files.js';
import type { FileSync } from '../../services/vm/filesync.js';
import type { VmService } from '../../services/vm/service.js';
import { snapshotView } from '../../services/vm/snapshots.js';
import type { VmWorkspaces } from '../../services/vm/workspace.js';
import type { VmReaper } from '../../services/vm/reaper.js';
import type { Routes } from '../server.js';

function checkSignal(sig: string | undefined): NodeJS.Signals {
  if (sig === undefined) return 'SIGKILL';
  if (!(sig in osConstants.signals)) throw badRequest(`unknown signal ${sig}`, 'e.g. --signal SIGTERM');
  return sig as NodeJS.Signals;
}

/** vm.*: straight to the VmService; a create or start that boots then applies [[file_sync]]. */
export function vmRoutes(
  vms: VmService,
  exec: VmExec,
  files: VmFiles,
  sync: FileSync | undefined,
  ws: VmWorkspaces,
  reaper?: VmReaper,
): Routes<'vm'> {
  const synced = async (was: string | undefined, view: VmView, ctx: OpContext): Promise<VmView> =>
    sync && was !== 'running' ? sync.afterBoot(view, ctx) : view;
  return {
    'vm.create': async (p, ctx) => {
      const create = async (q: typeof p, c: OpContext): Promise<VmView> => synced(undefined, await vms.create(q, c), c);
      return reaper ? reaper.create(p, ctx, create, (id) => vms.show(id)) : create(p, ctx);
    },
    'vm.list': () => vms.list(),
    'vm.resolve': (p) => vms.resolveMany(p.refs),
    'vm.start': async (p, ctx) => synced(vms.resolve(p.ref).state, await vms.start(p.ref, ctx), ctx),
    'vm.stop': (p, ctx) => vms.stop(p.ref, ctx),
    'vm.restart': async (p, ctx) => synced(undefined, await vms.restart(p.ref, ctx), ctx),
    'vm.pause': (p) => vms.pauser.pause(p.ref),
    'vm.resume': (p) => vms.pauser.resume(p.ref),
    'vm.snapshot_create': async (p, ctx) => {
      const s = await vms.snapshots.create(p.ref, p.name, ctx);
      return snapshotView(s, vms.imageName(s.imageId));
    },
    'vm.snapshot_list': () => vms.snapshots.list(),
    'vm.snapshot_rm': (p) => vms.snapshots.remove(p.name),
    'vm.fork': async (p, ctx) =>
      synced(undefined, await vms.snapshots.fork(p.ref, p.name, ctx, (q, src) => vms.create(q, ctx, src)), ctx),
    'vm.kill': (p) => vms.kill(p.ref, checkSignal(p.signal)),
    'vm.set': (p, ctx) => vms.set(p.ref, p, ctx),
    'vm.prune': (_p, ctx) => vms.prune(ctx),
    'vm.stats': (p) => vms.stats(p.ref),
    'vm.health': (p) => vms.health(p.ref),
    'vm.ports': (p) => vms.ports(p.ref),
    'vm.publish': (p) => vms.publisher.publish(p.ref, p.ports),
    'vm.unpublish': (p) => vms.publisher.unpublish(p.ref, p.ports),
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
