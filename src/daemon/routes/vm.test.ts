import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmView } from '../../api/views.js';
import { quietContext } from '../../services/context.js';
import type { VmExec } from '../../services/vm/exec.js';
import type { VmFiles } from '../../services/vm/files.js';
import type { FileSync } from '../../services/vm/filesync.js';
import type { VmService } from '../../services/vm/service.js';
import type { VmWorkspaces } from '../../services/vm/workspace.js';
import { vmRoutes } from './vm.js';

test('vm routes: [[file_sync]] runs after a create, a restart and a start that booted, not after a start of a running VM', async () => {
  const synced: string[] = [];
  let state = 'stopped';
  const view = (name: string): VmView => ({ name, state: 'running' }) as VmView;
  const vms = {
    create: async () => view('created'),
    start: async () => view('started'),
    restart: async () => view('restarted'),
    resolve: () => ({ state }),
  } as unknown as VmService;
  const sync = {
    afterBoot: async (v: VmView) => {
      synced.push(v.name);
      return v;
    },
  } as unknown as FileSync;
  const r = vmRoutes(vms, {} as VmExec, {} as VmFiles, sync, {} as VmWorkspaces);
  const ctx = quietContext();
  const call = (m: 'vm.create' | 'vm.start' | 'vm.restart', p: unknown): Promise<unknown> =>
    (r[m] as (p: unknown, c: unknown) => Promise<unknown>)(p, ctx);
  assert.deepEqual(await call('vm.create', { name: 'x' }), view('created'));
  await call('vm.start', { ref: 'x' });
  state = 'running';
  await call('vm.start', { ref: 'x' });
  await call('vm.restart', { ref: 'x' });
  assert.deepEqual(synced, ['created', 'started', 'restarted']);
});
