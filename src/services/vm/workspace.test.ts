import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import { workspaceCell } from '../../cli/commands/vm/list.js';
import { AppError } from '../../errors.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { VmRepo } from '../../store/vms.js';
import { vmView } from './observe.js';
import { VmWorkspaces } from './workspace.js';

test('vm.workspace_set records guest path, host path and HEAD on the VM; the view and the list cell show them', () => {
  const db = openStore(':memory:');
  new ImageRepo(db).insert(imageRow());
  const vms = new VmRepo(db);
  const row = vmRow({ id: 'a'.repeat(32), name: 'dev' });
  vms.insert(row);
  const head = 'b'.repeat(40);
  assert.equal(vmView(vms.get(row.id)!, 'img', '').workspace, null);
  const at = new Date('2026-12-03T10:00:00Z');
  const set = new VmWorkspaces(vms).set(
    { ref: 'dev', guest_path: '/root/repo', host_path: '/home/u/src/app', head },
    at,
  );
  const want = { guest_path: '/root/repo', host_path: '/home/u/src/app', head, prepared_at: at.toISOString() };
  assert.deepEqual(set, want);
  const v = vmView(vms.get(row.id)!, 'img', '');
  assert.deepEqual(v.workspace, want);
  const cells: [string, string][] = [
    ['/home/u', '~/src/app@bbbbbbb'],
    ['/home/other', '/home/u/src/app@bbbbbbb'],
    ['/home/u/src/app', '~@bbbbbbb'],
  ];
  for (const [home, cell] of cells) assert.equal(workspaceCell(v, home), cell, home);
  assert.equal(workspaceCell({ ...v, workspace: { ...want, head: null } }, '/x'), '/home/u/src/app');
  assert.equal(workspaceCell({ ...v, workspace: null }), '-');
  assert.throws(
    () => new VmWorkspaces(vms).set({ ref: 'nosuch', guest_path: '/root/repo', host_path: '/x', head: null }),
    (e: unknown) => e instanceof AppError && /nosuch/.test(e.message),
  );
});
