import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { defaultConfig } from '../../config/load.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { VmRepo, type VmRow } from '../../store/vms.js';
import { FakeRunner } from '../../system/fake-runner.js';
import type { HostProbe } from '../../system/host.js';
import { Paths } from '../../system/paths.js';
import { runChecks } from './checks.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A host where nothing is installed and KVM is absent: every probe answers at once. */
const host = {
  kvmReadWrite: async () => false,
  cpuInfo: async () => ({ hasVirt: false, tscKhz: undefined, modelName: undefined }),
  which: async () => undefined,
  cpuCount: () => 2,
  memBytes: () => 8 * 2 ** 30,
} as unknown as HostProbe;

/** A state dir whose store holds VMs `dev` (handles in the store) and `bare` (none), both running. */
function home(): Paths {
  const root = mkdtempSync(join(tmpdir(), 'doctor-'));
  roots.push(root);
  const paths = new Paths({ HOME: root, XDG_RUNTIME_DIR: join(root, 'run') }, 0);
  mkdirSync(paths.stateDir, { recursive: true });
  const db = openStore(paths.dbFile);
  new ImageRepo(db).insert({
    id: 'img1', name: 'debian', source: 'build', managed: true, dir: '/i', rootfsPath: '/i/r', workSeedPath: undefined,
    kernelName: 'k', distro: 'debian', sizeBytes: 1, assetsVersion: 1, createdAt: 'now',
  });
  const vm = (id: string, name: string, withHandles: boolean): VmRow => ({
    id, name, imageId: 'img1', state: 'running', vcpu: 1, memoryMib: 512, diskBytes: 1, overlayBytes: 1, nat: false, vmm: 'qemu', accel: 'tcg',
    networkMode: 'user', sshPort: 2222, diskStrategy: 'qcow2-overlay', handles: withHandles ? { pid: 7, startTime: 1, qmpSocket: '/q', sshPort: 2222 } : undefined,
    bootId: undefined, createdAt: 'now', updatedAt: 'now',
  });
  new VmRepo(db).insert(vm('aaaa', 'dev', true));
  new VmRepo(db).insert(vm('bbbb', 'bare', false));
  db.close();
  for (const id of ['aaaa', 'bbbb']) mkdirSync(paths.vmDir(id), { recursive: true });
  return paths;
}

const check = (paths: Paths) =>
  runChecks({ paths, host, runner: new FakeRunner(), version: 'test', config: defaultConfig({ cpus: 2, memBytes: 8 * 2 ** 30 }), configError: undefined, arch: 'x64' });

test('doctor warns about a corrupt handles.json, naming the VM, the file and whether the store has a copy', async () => {
  const paths = home();
  writeFileSync(join(paths.vmDir('aaaa'), 'handles.json'), '{"pid": 7');
  writeFileSync(join(paths.vmDir('bbbb'), 'handles.json'), '[]');
  const row = (await check(paths)).find((r) => r.name === 'vm handles');
  assert.ok(row, 'a vm handles row');
  assert.equal(row.status, 'WARN');
  assert.match(row.detail, /dev: .*aaaa\/handles\.json is not valid JSON.*; using the copy in the store/);
  assert.match(row.detail, /bare: .*bbbb\/handles\.json does not hold VM handles.*no copy in the store/);
  assert.match(row.fix ?? '', /banger vm restart/);
});

test('doctor passes handles.json files that are fine or absent', async () => {
  const paths = home();
  writeFileSync(join(paths.vmDir('aaaa'), 'handles.json'), JSON.stringify({ pid: 7, startTime: 1, qmpSocket: '/q', sshPort: 2222 }));
  const row = (await check(paths)).find((r) => r.name === 'vm handles');
  assert.deepEqual(row, { name: 'vm handles', status: 'PASS', detail: '2 VMs; every handles.json is readable or absent' });
});
