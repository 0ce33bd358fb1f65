import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadState, saveState, shQuote, stateUri } from './migrate.js';

test('state URIs: exec: through /bin/sh with the path single-quoted, quotes inside it escaped', () => {
  const cases = [
    {
      path: '/s/templates/k/state.bin',
      save: "exec:cat > '/s/templates/k/state.bin'",
      load: "exec:cat '/s/templates/k/state.bin'",
    },
    {
      path: "/a b/it's;rm -rf ~",
      save: "exec:cat > '/a b/it'\\''s;rm -rf ~'",
      load: "exec:cat '/a b/it'\\''s;rm -rf ~'",
    },
    { path: '/x/$(id)`id`', save: "exec:cat > '/x/$(id)`id`'", load: "exec:cat '/x/$(id)`id`'" },
  ];
  for (const c of cases) {
    assert.equal(stateUri('save', c.path), c.save, c.path);
    assert.equal(stateUri('load', c.path), c.load, c.path);
  }
  assert.equal(shQuote(''), "''");
});

/** A fake QMP: records commands, answers query-* from a script. */
function fakeQmp(answers: Record<string, unknown[]>): { calls: string[]; qmp: Parameters<typeof saveState>[4] } {
  const calls: string[] = [];
  return {
    calls,
    qmp: (_socket: string, execute: string, args?: Record<string, unknown>) => {
      calls.push(args ? `${execute} ${JSON.stringify(args)}` : execute);
      const q = answers[execute];
      return Promise.resolve(q && q.length > 1 ? q.shift() : (q?.[0] ?? {}));
    },
  };
}

test('save: stop, bandwidth uncapped, migrate to the file, polled until completed', async () => {
  const f = fakeQmp({ 'query-migrate': [{ status: 'active' }, { status: 'completed' }] });
  await saveState('/r/q.qmp', '/t/state.bin', 5000, {}, f.qmp);
  assert.deepEqual(f.calls, [
    'stop',
    'migrate-set-parameters {"max-bandwidth":8589934592}',
    'migrate {"uri":"exec:cat > \'/t/state.bin\'"}',
    'query-migrate',
    'query-migrate',
  ]);
});

test('save: a failed migration is an error naming why', async () => {
  const f = fakeQmp({ 'query-migrate': [{ status: 'failed', 'error-desc': 'disk full' }] });
  await assert.rejects(
    saveState('/r/q.qmp', '/t/state.bin', 5000, {}, f.qmp),
    /saving the guest state failed: disk full/,
  );
});

test('load: migrate-incoming from the file, waits until loaded, then cont', async () => {
  const f = fakeQmp({ 'query-status': [{ status: 'inmigrate' }, { status: 'paused' }] });
  await loadState('/r/q.qmp', '/t/state.bin', 5000, {}, f.qmp);
  assert.deepEqual(f.calls, [
    'migrate-incoming {"uri":"exec:cat \'/t/state.bin\'"}',
    'query-status',
    'query-status',
    'cont',
  ]);
});

test('save and load with ignoreShared: x-ignore-shared is set first on both sides', async () => {
  const cap = 'migrate-set-capabilities {"capabilities":[{"capability":"x-ignore-shared","state":true}]}';
  const s = fakeQmp({ 'query-migrate': [{ status: 'completed' }] });
  await saveState('/r/q.qmp', '/t/state.bin', 5000, { ignoreShared: true }, s.qmp);
  assert.deepEqual(s.calls.slice(0, 3), ['stop', cap, 'migrate-set-parameters {"max-bandwidth":8589934592}']);
  const l = fakeQmp({ 'query-status': [{ status: 'paused' }] });
  await loadState('/r/q.qmp', '/t/state.bin', 5000, { ignoreShared: true }, l.qmp);
  assert.deepEqual(l.calls, [cap, 'migrate-incoming {"uri":"exec:cat \'/t/state.bin\'"}', 'query-status', 'cont']);
});
