import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, openStore, schemaVersion } from './db.js';
import { ImageRepo } from './images.js';
import { IpRepo } from './ips.js';
import { KernelRepo } from './kernels.js';
import { MIGRATIONS, migrationStatus, SCHEMA_VERSION } from './migrations.js';
import { OperationRepo } from './operations.js';
import { imageRow, vmRow } from '../../test/helpers/rows.js';
import { VmRepo } from './vms.js';

test('migrations bring a new store to the current schema, idempotently', () => {
  const db = openStore(':memory:');
  assert.equal(schemaVersion(db), SCHEMA_VERSION);
  db.close();
});

test('migration status: 0 compatible, 1 needs migration, 2 incompatible', () => {
  assert.equal(migrationStatus(SCHEMA_VERSION), 0);
  assert.equal(migrationStatus(SCHEMA_VERSION - 1), 1);
  assert.equal(migrationStatus(SCHEMA_VERSION + 1), 2);
});

test('a store newer than this banger is refused', () => {
  const db = openStore(':memory:');
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  assert.throws(() => migrate(db), /newer than this banger/);
  db.close();
});

test('VM names are unique and rows round-trip, foreign keys enforced', () => {
  const db = openStore(':memory:');
  const images = new ImageRepo(db);
  images.insert(imageRow());
  const vms = new VmRepo(db);
  const row = vmRow();
  vms.insert(row);
  assert.throws(() => vms.insert({ ...row, id: 'v2' }), /UNIQUE/);
  assert.throws(() => vms.insert({ ...row, id: 'v3', name: 'other', imageId: 'nope' }), /FOREIGN KEY/);
  vms.setState('v1', 'running', {
    sshPort: 40022,
    handles: { pid: 1, startTime: 2, controlSocket: '/q', sshPort: 40022 },
  });
  vms.update('v1', { rootDisk: { strategy: 'reflink', path: '/v/root.raw', vars: { a: 'b' } } });
  const got = vms.byName('dev');
  assert.equal(got?.state, 'running');
  assert.deepEqual(got?.rootDisk, { strategy: 'reflink', path: '/v/root.raw', vars: { a: 'b' } });
  assert.deepEqual(got?.handles, { pid: 1, startTime: 2, controlSocket: '/q', sshPort: 40022 });
  assert.equal(vms.countByImage('img1'), 1);
  vms.delete('v1');
  assert.deepEqual(vms.list(), []);
  db.close();
});

test('migrating a store that holds rows keeps every row readable, from each older schema', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'store-mig-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (let from = 1; from < SCHEMA_VERSION; from++) {
    const file = join(dir, `v${from}.db`);
    // A store as banger at schema `from` left it, with a kernel, an image and a running VM (columns of schema 1).
    const old = new Database(file);
    for (const sql of MIGRATIONS.slice(0, from)) old.exec(sql);
    old.pragma(`user_version = ${from}`);
    old.exec(`
      INSERT INTO kernels (name, distro, arch, version, format, source, sha256, dir, has_initrd, has_modules, module_count, created_at)
        VALUES ('debian-bookworm-cloud', 'debian', 'x86_64', '6.1.0-9', 'bzImage', 'apt', '${'a'.repeat(64)}', '/k', 1, 1, 3000, '2025-01-01T00:00:00Z');
      INSERT INTO images (id, name, source, managed, dir, rootfs_path, work_seed_path, kernel_name, distro, size_bytes, assets_version, created_at)
        VALUES ('img1', 'debian-bookworm', 'build:bookworm', 1, '/i', '/i/rootfs.ext4', NULL, 'debian-bookworm-cloud', 'debian', 1073741824, 1, '2025-01-01T00:00:00Z');
      INSERT INTO vms (id, name, image_id, state, vcpu, memory_mib, disk_bytes, overlay_bytes, nat, vmm, accel, network_mode, ssh_port,
                       disk_strategy, handles, boot_id, created_at, updated_at)
        VALUES ('v1', 'dev', 'img1', 'running', 2, 1024, 8589934592, 8589934592, 0, 'qemu', 'tcg', 'user', 40022, 'qcow2-overlay',
                '{"pid":4242,"startTime":77,"${from < 3 ? 'qmpSocket' : 'controlSocket'}":"/r/v1.qmp","sshPort":40022}', 'b1', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
    `);
    old.close();

    const db = openStore(file);
    assert.equal(schemaVersion(db), SCHEMA_VERSION, `from ${from}`);
    const k = new KernelRepo(db).get('debian-bookworm-cloud');
    assert.equal(k?.moduleCount, 3000, `from ${from}: kernel row`);
    assert.deepEqual(k?.traits, {}, `from ${from}: a kernel from before traits has none recorded`);
    assert.equal(
      new ImageRepo(db).byName('debian-bookworm')?.kernelName,
      'debian-bookworm-cloud',
      `from ${from}: image row`,
    );
    const vm = new VmRepo(db).byName('dev');
    assert.equal(vm?.state, 'running', `from ${from}: VM row`);
    // Schema 3 renamed the control socket of running VMs' handles (a store at 3 already has the new name); a VM from before has no root-disk plan.
    assert.deepEqual(vm?.handles, { pid: 4242, startTime: 77, controlSocket: '/r/v1.qmp', sshPort: 40022 });
    assert.equal(vm?.rootDisk, undefined);
    assert.equal(vm?.diskBytes, 8589934592);
    // Schema 4: no VM holds a guest IP yet; one can be allocated, and it goes with its VM.
    const ips = new IpRepo(db);
    assert.deepEqual([...ips.all()], [], `from ${from}: no leases`);
    // Schema 5: a VM from before has no boot spans; the last boot's can be recorded and read back.
    assert.equal(vm?.bootTimings, undefined, `from ${from}: no boot spans`);
    const t = {
      at: '2026-01-01T00:00:00.000Z',
      total_ms: 5,
      spans: [{ side: 'host' as const, name: 'a', start_ms: 0, ms: 5 }],
    };
    new VmRepo(db).setBootTimings('v1', t);
    assert.deepEqual(new VmRepo(db).get('v1')?.bootTimings, t, `from ${from}: boot spans kept`);
    assert.equal(ips.allocate('v1', '172.16.0.1', 24), '172.16.0.2', `from ${from}: allocation works`);
    new VmRepo(db).delete('v1');
    assert.deepEqual([...ips.all()], [], `from ${from}: lease deleted with its VM`);
    db.close();
  }
});

test('the database and its -wal/-shm files are 0600, also when they existed with looser modes', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-db-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const modes = (file: string): number[] => ['', '-wal', '-shm'].map((s) => statSync(`${file}${s}`).mode & 0o777);
  const umask = process.umask(0o022);
  try {
    const fresh = join(dir, 'banger.db');
    const db = openStore(fresh);
    new OperationRepo(db).start('op-perm-1', 'vm.create');
    assert.deepEqual(modes(fresh), [0o600, 0o600, 0o600]);
    db.close();

    // Left 0644 by an older banger (the -wal/-shm of a daemon that was killed).
    const old = join(dir, 'old.db');
    for (const s of ['', '-wal', '-shm']) writeFileSync(`${old}${s}`, '', { mode: 0o644 });
    const reopened = openStore(old);
    new OperationRepo(reopened).start('op-perm-2', 'vm.create');
    assert.deepEqual(modes(old), [0o600, 0o600, 0o600]);
    reopened.close();
  } finally {
    process.umask(umask);
  }
});
