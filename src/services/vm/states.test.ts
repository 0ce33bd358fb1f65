import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertTransition, canTransition, TRANSITIONS, VM_STATES } from './states.js';

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
