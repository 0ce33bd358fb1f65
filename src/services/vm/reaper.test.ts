import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import type { VmView } from '../../api/methods.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { IDEMPOTENCY_KEEP_MS, LifetimeRepo, type VmLifetime } from '../../store/lifetimes.js';
import { VmRepo } from '../../store/vms.js';
import { nullLogger, quietContext } from '../context.js';
import { reapDecision, VmReaper } from './reaper.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

test('reapDecision: ttl and idle_ttl, stop or (rm) delete, and which fired', () => {
  const l = (o: Partial<VmLifetime>): VmLifetime => ({
    vmId: 'v',
    deadlineAt: undefined,
    idleTtlMs: undefined,
    rm: false,
    ...o,
  });
  const cases: [string, VmLifetime, 'running' | 'stopped', string, number | undefined, number, string | undefined][] = [
    ['no rules: kept', l({}), 'running', at(0), undefined, 1e9, undefined],
    ['ttl not yet', l({ deadlineAt: T0 + 1000 }), 'running', at(0), undefined, T0 + 999, undefined],
    ['ttl ran out: stop', l({ deadlineAt: T0 + 1000 }), 'running', at(0), undefined, T0 + 1000, 'stop ttl'],
    [
      'ttl ran out, rm: delete',
      l({ deadlineAt: T0 + 1000, rm: true }),
      'running',
      at(0),
      undefined,
      T0 + 2000,
      'delete ttl',
    ],
    ['ttl of a stopped VM: nothing to stop', l({ deadlineAt: T0 }), 'stopped', at(0), undefined, T0 + 1, undefined],
    [
      'ttl of a stopped rm VM: deleted',
      l({ deadlineAt: T0, rm: true }),
      'stopped',
      at(0),
      undefined,
      T0 + 1,
      'delete ttl',
    ],
    ['idle: used by a command recently', l({ idleTtlMs: 1000 }), 'running', at(500), undefined, T0 + 1400, undefined],
    ['idle: used by a process recently', l({ idleTtlMs: 1000 }), 'running', at(0), T0 + 900, T0 + 1400, undefined],
    ['idle for idle_ttl: stop', l({ idleTtlMs: 1000 }), 'running', at(0), T0 + 100, T0 + 1100, 'stop idle_ttl'],
    ['idle, rm: delete', l({ idleTtlMs: 1000, rm: true }), 'running', at(0), undefined, T0 + 1000, 'delete idle_ttl'],
    ['idle rule on a stopped VM: kept', l({ idleTtlMs: 1000 }), 'stopped', at(0), undefined, T0 + 5000, undefined],
  ];
  for (const [name, lt, state, updatedAt, lastUse, now, want] of cases) {
    const r = reapDecision(lt, { state, updatedAt }, lastUse, now);
    assert.equal(r && `${r.action} ${r.why}`, want, name);
    if (r) assert.match(r.message, r.why === 'ttl' ? /ttl ran out/ : /idle_ttl/, name);
  }
});

test('reaper: rules persist in the store across a daemon restart; a sweep stops, deletes and says which limit fired', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'reaper-'));
  try {
    const file = join(dir, 'state.db');
    let db = openStore(file);
    new ImageRepo(db).insert(imageRow());
    const vms = new VmRepo(db);
    vms.insert(vmRow({ id: 'v1', name: 'one', state: 'running', updatedAt: at(0) }));
    vms.insert(vmRow({ id: 'v2', name: 'two', state: 'running', updatedAt: at(0) }));
    vms.insert(vmRow({ id: 'v3', name: 'three', state: 'running', updatedAt: at(0) }));
    const first = new LifetimeRepo(db);
    first.set({ vmId: 'v1', deadlineAt: T0 + 1000, idleTtlMs: undefined, rm: false });
    first.set({ vmId: 'v2', deadlineAt: undefined, idleTtlMs: 500, rm: true });
    first.set({ vmId: 'v3', deadlineAt: T0 + 60_000, idleTtlMs: undefined, rm: false });
    db.close();
    // The "restarted daemon": a new store handle, new repos.
    db = openStore(file);
    const repo = new LifetimeRepo(db);
    const vmRepo = new VmRepo(db);
    const did: string[] = [];
    const ended: string[] = [];
    const reaper = new VmReaper({
      lifetimes: repo,
      vms: vmRepo,
      lastUse: () => undefined,
      endProcesses: (id, why) => ended.push(`${id}: ${why}`),
      stop: async (id) => void did.push(`stop ${id}`),
      delete: async (id) => void did.push(`delete ${id}`),
      log: nullLogger,
    });
    const done = await reaper.sweep(T0 + 2000);
    assert.deepEqual(done, ['one: stop (ttl)', 'two: delete (idle_ttl)']);
    assert.deepEqual(did, ['stop v1', 'delete v2']);
    assert.match(ended[0] ?? '', /^v1: VM "one" was stopped: its ttl ran out \(ttl\)/);
    assert.match(ended[1] ?? '', /^v2: VM "two" was deleted: .*idle_ttl/);
    assert.equal(repo.get('v1')?.deadlineAt, undefined, 'a ttl is enforced once');
    assert.equal(repo.get('v3')?.deadlineAt, T0 + 60_000);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vm.create idempotency: a retried key returns the same VM (also concurrently); keys expire after 24 h', async () => {
  const db = openStore(':memory:');
  new ImageRepo(db).insert(imageRow());
  const vms = new VmRepo(db);
  const repo = new LifetimeRepo(db);
  const reaper = new VmReaper({
    lifetimes: repo,
    vms,
    lastUse: () => undefined,
    endProcesses: () => undefined,
    stop: async () => undefined,
    delete: async () => undefined,
    log: nullLogger,
  });
  let n = 0;
  const create = async (): Promise<VmView> => {
    n++;
    await new Promise((r) => setTimeout(r, 10));
    vms.insert(vmRow({ id: `v${n}`, name: `vm${n}` }));
    return { id: `v${n}`, name: `vm${n}` } as VmView;
  };
  const show = async (id: string): Promise<VmView> => ({ id, name: vms.get(id)?.name ?? '?' }) as VmView;
  const ctx = quietContext();
  const [a, b] = await Promise.all([
    reaper.create({ idempotency_key: 'k1', ttl_ms: 60_000 }, ctx, create, show),
    reaper.create({ idempotency_key: 'k1', ttl_ms: 60_000 }, ctx, create, show),
  ]);
  const c = await reaper.create({ idempotency_key: 'k1' }, ctx, create, show);
  assert.deepEqual([a.id, b.id, c.id, n], ['v1', 'v1', 'v1', 1]);
  assert.ok(repo.get('v1')?.deadlineAt !== undefined, 'the ttl was recorded');
  const d = await reaper.create({ idempotency_key: 'k2' }, ctx, create, show);
  assert.equal(d.id, 'v2');
  assert.equal(repo.keyed('k1', Date.now() + IDEMPOTENCY_KEEP_MS + 1000), undefined);
  await assert.rejects(reaper.create({ rm: true }, ctx, create, show), /rm needs ttl_ms or idle_ttl_ms/);
});
