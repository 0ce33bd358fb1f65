import { AppError, precondition } from '../../errors.js';
import type { VmPatch, VmRepo } from '../../store/vms.js';

/** The closed set of VM states. */
export const VM_STATES = ['creating', 'stopped', 'starting', 'running', 'stopping', 'error'] as const;
export type VmState = (typeof VM_STATES)[number];

/** Allowed transitions: from → the states it may move to. */
export const TRANSITIONS: Readonly<Record<VmState, readonly VmState[]>> = {
  // A create's first boot stays `creating` until the guest is up (reconcile undoes an unfinished one).
  creating: ['stopped', 'starting', 'running', 'error'],
  stopped: ['starting'],
  starting: ['running', 'stopped', 'error'],
  running: ['stopping', 'stopped', 'error'],
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
