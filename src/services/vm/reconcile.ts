import type { VmHandles, VmPatch, VmRepo, VmRow } from '../../store/vms.js';
import { findProcesses, processStartTime } from '../../system/process.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import type { VmDisks } from './disks.js';
import { vmmHandles, type RuntimeFiles } from './runtime.js';
import { isLive, type VmState } from './states.js';

export interface ReconcileDeps {
  vms: VmRepo;
  driver: VmmDriver;
  log: Logger;
  runtime: RuntimeFiles;
  disks: VmDisks;
  /** The lifecycle's state writer and steps, so reconcile converges through the same paths. */
  transition(id: string, to: VmState, patch?: VmPatch): void;
  stopVmm(id: string, state: 'stopped' | 'error'): Promise<void>;
  destroy(id: string): Promise<void>;
}

/**
 * Startup, after a clean stop or a crash. Only a boot the daemon saw finish
 * is adopted; everything else converges to a state a retry can start from:
 * - `creating` (a create that never finished, its first boot included): the
 *   VMM, if any, is killed and the VM removed, as a failed create would
 *   have done; the client already got an error, and a retry reuses the name.
 * - `starting` (a start whose boot was never confirmed) and `stopping` (a
 *   stop that was asked for): the VMM, if any, is killed; the VM is stopped
 *   with its disks, and `vm start` works again.
 * - `running` and `paused`: adopted when its VMM is alive (same pid and
 *   start time), else marked stopped. The VMM's run state says which of the
 *   two it is (a daemon killed between a pause and its state write); a VMM
 *   that does not answer keeps the recorded state. A paused VM is never taken
 *   for a dead one: its process lives, only its vCPUs are stopped.
 * The VMM is found by the handles recorded right after its spawn
 * (handles.json, else the store's copy); a VM interrupted before even those
 * were written has its VMM found by its control socket on the process's
 * command line. A running VM whose handles.json is corrupt and has no copy
 * in the store is marked error: nothing says which process is its VMM.
 * First, VMs made by a banger that did not record root-disk plans get theirs
 * (and a raw copy named root.qcow2 becomes root.raw).
 */
export async function reconcileVms(d: ReconcileDeps): Promise<void> {
  for (const vm of d.vms.list()) {
    const rootDisk = await d.disks.upgradeLegacy(vm).catch((e: unknown) => {
      d.log.warn('cannot record the root disk of a VM made by an older banger', { name: vm.name, error: String(e) });
      return undefined;
    });
    if (rootDisk) d.vms.update(vm.id, { rootDisk });
  }
  for (const vm of d.vms.list()) {
    if (vm.state === 'stopped' || vm.state === 'error') continue;
    const { handles, problem } = await d.runtime.handles(vm);
    if (problem !== undefined && handles === undefined && isLive(vm.state)) {
      // Nothing says which process is its VMM: marking it stopped could orphan a live one.
      d.log.error('cannot tell whether the VMM of a VM still runs; marking it error', { name: vm.name, problem });
      d.transition(vm.id, 'error');
      continue;
    }
    if (problem !== undefined) d.log.warn('handles.json of a VM is corrupt', { name: vm.name, problem });
    if (vm.state === 'creating' || vm.state === 'stopping') {
      // A create nobody watches any more is undone; a stop someone asked for is finished.
      await killUnrecorded(d, vm, handles);
      if (vm.state === 'creating') {
        d.log.warn('removing a VM whose creation was interrupted', { name: vm.name });
        await d.destroy(vm.id);
      } else {
        d.log.warn('VM was stopping when the daemon stopped; finishing the stop', { name: vm.name });
        await d.stopVmm(vm.id, 'stopped');
      }
      continue;
    }
    // running, paused, or starting (a start interrupted after its VMM was spawned): a live VMM is adopted.
    const alive = handles ? await d.driver.isAlive(vmmHandles(handles)) : false;
    if (alive && handles) {
      const to = await adoptedState(d, vm, handles);
      d.log.info(`adopted ${to} VM`, { name: vm.name, pid: handles.pid });
      // A row that lost its handles (known only through handles.json) gets them back.
      const patch = { handles, sshPort: handles.sshPort ?? vm.sshPort };
      if (vm.state !== to) d.transition(vm.id, to, patch);
      else if (!vm.handles) d.vms.update(vm.id, patch);
      continue;
    }
    await killUnrecorded(d, vm, handles);
    d.log.info('VM is no longer running; marking it stopped', { name: vm.name });
    await d.runtime.clear(vm.id);
    d.transition(vm.id, 'stopped', { handles: undefined, sshPort: undefined });
  }
}

/** What a live VMM's VM is: paused or running as its VMM says; the recorded state when it does not say. */
async function adoptedState(d: ReconcileDeps, vm: VmRow, h: VmHandles): Promise<'running' | 'paused'> {
  const recorded = vm.state === 'paused' ? 'paused' : 'running';
  if (vm.state === 'starting') return recorded;
  const says = await d.driver.runState(vmmHandles(h)).catch((e: unknown) => {
    d.log.warn('cannot read the run state of a VMM; keeping the recorded state', { name: vm.name, error: String(e) });
    return 'other' as const;
  });
  return says === 'other' ? recorded : says;
}

/** Kills a VM's VMM that has no recorded handles (the daemon died within microseconds of its spawn). */
async function killUnrecorded(d: ReconcileDeps, vm: VmRow, handles: VmHandles | undefined): Promise<void> {
  if (handles) return;
  // Matched on the VMM's control-socket argument, which only that VMM carries (VmmCapabilities):
  // a user's `tail -f` of the console log is never matched.
  const sock = d.runtime.controlSocket(vm.id);
  const carries = d.driver.capabilities.controlSocket.carriedBy;
  for (const pid of await findProcesses((argv) => carries(argv, sock))) {
    const startTime = await processStartTime(pid);
    if (startTime === undefined) continue;
    d.log.warn('killing a VMM the daemon had not recorded yet', { name: vm.name, pid });
    await d.driver.kill({ pid, startTime, controlSocket: sock });
  }
}
