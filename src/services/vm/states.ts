import { AppError, precondition } from '../../errors.js';
import type { VmPatch, VmRepo } from '../../store/vms.js';

/** The closed set of VM states. */
export const VM_STATES = ['creating', 'stopped', 'starting', 'running', 'paused', 'stopping', 'error'] as const;
export type VmState = (typeof VM_STATES)[number];

/** Allowed transitions: from → the states it may move to. */
export const TRANSITIONS: Readonly<Record<VmState, readonly VmState[]>> = {
  // A create's first boot stays `creating` until the guest is up (reconcile undoes an unfinished one).
  creating: ['stopped', 'starting', 'running', 'error'],
  stopped: ['starting'],
  starting: ['running', 'stopped', 'error'],
  running: ['paused', 'stopping', 'stopped', 'error'],
  // `vm pause`: the VMM lives with its vCPUs stopped; only `vm resume`, a stop or a failure leave it.
  paused: ['running', 'stopping', 'stopped', 'error'],
  stopping: ['stopped', 'error'],
  error: ['starting', 'stopped'],
};

export function canTransition(from: VmState, to: VmState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws a precondition error naming expected vs actual state and the escape hatch. */
export function assertTransition(name: string, from: VmState, to: VmState): void {
  if (canTransition(from, to)) return;
  const expected = (Object.keys(TRANSITIONS) as VmState[]).filter((s) => TRANSITIONS[s].includes(to));
  throw precondition(
    `VM "${name}" is ${from}; moving to ${to} needs it to be ${expected.join(' or ')}`,
    `if it is stuck, \`banger vm delete ${name}\` removes it whatever its state`,
  );
}

/**
 * The one writer of VM states: checks the move against TRANSITIONS, then writes
 * the state with `patch` in one update. Throws, writing nothing, on a move the
 * table forbids (staying in the same state is not a move the table holds).
 */
export function transition(vms: Pick<VmRepo, 'get' | 'setState'>, id: string, to: VmState, patch: VmPatch = {}): void {
  const vm = vms.get(id);
  if (!vm) throw new AppError('not_found', `VM ${id} disappeared`);
  assertTransition(vm.name, vm.state, to);
  vms.setState(id, to, patch);
}

/** A VM whose VMM process lives (running, or paused with its vCPUs stopped). */
export function isLive(state: VmState): boolean {
  return state === 'running' || state === 'paused';
}

/**
 * The error for an action that needs a running guest (ssh, exec, files):
 * a paused VM names `vm resume`, any other state `vm start`.
 */
export function notRunning(vm: { name: string; state: VmState }, what: string): AppError {
  return precondition(
    `VM "${vm.name}" is ${vm.state}; ${what} needs it running`,
    vm.state === 'paused' ? resumeHint(vm.name) : `start it with \`banger vm start ${vm.name}\``,
  );
}

export function resumeHint(name: string): string {
  return `resume it with \`banger vm resume ${name}\``;
}
