import type { WorkspaceView } from '../../api/views.js';
import type { VmRepo } from '../../store/vms.js';
import { resolveRef } from './names.js';

/*
 * vm.workspace_set: the CLI ships a workspace itself (over ssh or the agent)
 * and then records here what landed: guest path, host path, HEAD. `vm show`
 * and `vm list` show it; `vm exec` runs there and compares HEAD.
 */

export interface WorkspaceSetParams {
  ref: string;
  guest_path: string;
  host_path: string;
  head: string | null;
}

export class VmWorkspaces {
  constructor(private readonly vms: Pick<VmRepo, 'byName' | 'get' | 'list' | 'setWorkspace'>) {}

  set(p: WorkspaceSetParams, now = new Date()): WorkspaceView {
    const vm = resolveRef(this.vms, p.ref);
    const ws = { guestPath: p.guest_path, hostPath: p.host_path, head: p.head, preparedAt: now.toISOString() };
    this.vms.setWorkspace(vm.id, ws);
    return { guest_path: ws.guestPath, host_path: ws.hostPath, head: ws.head, prepared_at: ws.preparedAt };
  }
}
