import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmPatch, VmRepo, VmRow } from '../../store/vms.js';
import {
  assertTransition,
  canTransition,
  isLive,
  notRunning,
  transition,
  TRANSITIONS,
  VM_STATES,
  type VmState,
} from './states.js';

test('transition table covers every state and only names known states', () => {
  for (const s of VM_STATES) {
    assert.ok(TRANSITIONS[s], s);
    for (const t of TRANSITIONS[s]) assert.ok(VM_STATES.includes(t));
  }
});

test('transitions', () => {
  const cases: [Parameters<typeof canTransition>[0], Parameters<typeof canTransition>[1], boolean][] = [
    ['creating', 'starting', true],
    ['stopped', 'starting', true],
    ['starting', 'running', true],
    ['running', 'starting', false],
    ['stopped', 'running', false],
    ['error', 'starting', true],
    // vm pause / vm resume: pause only from running, resume only from paused; a paused VM can be stopped.
    ['running', 'paused', true],
    ['paused', 'running', true],
    ['paused', 'stopping', true],
    ['paused', 'stopped', true],
    ['paused', 'error', true],
    ['stopped', 'paused', false],
    ['starting', 'paused', false],
    ['creating', 'paused', false],
    ['stopping', 'paused', false],
    ['error', 'paused', false],
    ['paused', 'starting', false],
    ['paused', 'paused', false],
  ];
  for (const [from, to, ok] of cases) assert.equal(canTransition(from, to), ok, `${from} → ${to}`);
});

test('a wrong-state error names expected and actual state and the escape hatch', () => {
  assert.throws(
    () => assertTransition('dev', 'running', 'starting'),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === 'precondition' &&
      /is running/.test(e.message) &&
      /stopped/.test(e.message) &&
      /vm delete dev/.test(e.hint ?? ''),
  );
});

/** A one-row store: what transition() reads and writes. */
function oneRow(
  state: VmState,
): { row: { name: string; state: VmState; sshPort?: number }; writes: number } & Pick<VmRepo, 'get' | 'setState'> {
  const s = {
    row: { name: 'dev', state } as { name: string; state: VmState; sshPort?: number },
    writes: 0,
    get: (id: string) => (id === 'v1' ? (s.row as unknown as VmRow) : undefined),
    setState: (_id: string, to: VmState, patch: VmPatch = {}) => {
      s.writes++;
      s.row = { ...s.row, ...patch, state: to } as typeof s.row;
    },
  };
  return s;
}

test('transition(): a move the table forbids throws and writes nothing', () => {
  for (const [from, to] of [
    ['stopped', 'running'],
    ['stopping', 'starting'],
    ['running', 'starting'],
    ['stopped', 'stopped'],
    ['error', 'running'],
  ] as const) {
    const repo = oneRow(from);
    assert.throws(
      () => transition(repo, 'v1', to, { sshPort: 1 }),
      (e: Error & { code?: string }) => e.code === 'precondition' && e.message.includes(`is ${from}; moving to ${to}`),
      `${from} → ${to}`,
    );
    assert.equal(repo.writes, 0, `${from} → ${to} wrote`);
    assert.equal(repo.row.state, from);
  }
});

test('transition(): an allowed move writes the state and its patch in one write', () => {
  const repo = oneRow('creating');
  transition(repo, 'v1', 'running', { sshPort: 40022 });
  assert.equal(repo.writes, 1);
  assert.deepEqual(repo.row, { name: 'dev', state: 'running', sshPort: 40022 });
  assert.throws(
    () => transition(repo, 'nope', 'stopped'),
    (e: Error & { code?: string }) => e.code === 'not_found',
  );
});

test('notRunning: a paused VM names vm resume, any other state vm start; isLive is running or paused', () => {
  const paused = notRunning({ name: 'dev', state: 'paused' }, 'ssh');
  assert.equal(paused.code, 'precondition');
  assert.equal(paused.message, 'VM "dev" is paused; ssh needs it running');
  assert.equal(paused.hint, 'resume it with `banger vm resume dev`');
  for (const s of ['stopped', 'error', 'starting'] as const)
    assert.equal(notRunning({ name: 'dev', state: s }, 'exec').hint, 'start it with `banger vm start dev`');
  assert.deepEqual(
    VM_STATES.filter((s) => isLive(s)),
    ['running', 'paused'],
  );
});
