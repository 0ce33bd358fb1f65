import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { openStore, type Db } from './db.js';
import { ImageRepo } from './images.js';
import { IpRepo } from './ips.js';
import { VmRepo } from './vms.js';
import { imageRow, vmRow } from '../../test/helpers/rows.js';

function storeWithVms(file: string, n: number): Db {
  const db = openStore(file);
  new ImageRepo(db).insert(imageRow());
  const vms = new VmRepo(db);
  for (let i = 1; i <= n; i++) vms.insert(vmRow({ id: `v${i}`, name: `vm${i}`, networkMode: 'bridge' }));
  return db;
}

test('guest IPs: lowest free first, stable for the VM, free again only after the VM is deleted', () => {
  const db = storeWithVms(':memory:', 3);
  const ips = new IpRepo(db);
  assert.equal(ips.allocate('v1', '172.16.0.1', 24), '172.16.0.2', 'skips network and bridge');
  assert.equal(ips.allocate('v2', '172.16.0.1', 24), '172.16.0.3');
  assert.equal(ips.allocate('v1', '172.16.0.1', 24), '172.16.0.2', 'stable: same VM, same IP');
  new VmRepo(db).delete('v1');
  assert.equal(ips.get('v1'), undefined, 'the lease goes with the VM');
  assert.equal(ips.allocate('v3', '172.16.0.1', 24), '172.16.0.2', 'deterministic: the freed lowest address');
  assert.deepEqual(
    [...ips.all()],
    [
      ['v3', '172.16.0.2'],
      ['v2', '172.16.0.3'],
    ],
  );
  db.close();
});

test('guest IPs: the UNIQUE column refuses a second VM on one address', () => {
  const db = storeWithVms(':memory:', 2);
  db.prepare("INSERT INTO vm_ips (vm_id, ip, allocated_at) VALUES ('v1', '172.16.0.2', 'now')").run();
  assert.throws(
    () => db.prepare("INSERT INTO vm_ips (vm_id, ip, allocated_at) VALUES ('v2', '172.16.0.2', 'now')").run(),
    /UNIQUE/,
  );
  db.close();
});

test('guest IPs: exhaustion is a clear error naming the cidr, and leaves no row behind', () => {
  const db = storeWithVms(':memory:', 3);
  const ips = new IpRepo(db);
  // 10.0.0.0/30 with the bridge on .1: one guest address, .2.
  assert.equal(ips.allocate('v1', '10.0.0.1', 30), '10.0.0.2');
  assert.throws(
    () => ips.allocate('v2', '10.0.0.1', 30),
    (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, 'precondition');
      assert.match(e.message, /no free guest IP in 10\.0\.0\.1\/30: all 1 addresses are held by VMs/);
      assert.match(e.hint ?? '', /cidr/);
      return true;
    },
  );
  assert.equal(ips.get('v2'), undefined);
  db.close();
});

test('guest IPs: a held address outside a changed subnet is replaced by one inside it', () => {
  const db = storeWithVms(':memory:', 1);
  const ips = new IpRepo(db);
  assert.equal(ips.allocate('v1', '172.16.0.1', 24), '172.16.0.2');
  assert.equal(ips.allocate('v1', '10.9.0.1', 24), '10.9.0.2');
  assert.equal(ips.all().size, 1);
  db.close();
});

test('guest IPs: five concurrent allocations get five distinct IPs (in-process)', async () => {
  const db = storeWithVms(':memory:', 5);
  const ips = new IpRepo(db);
  const got = await Promise.all(
    [1, 2, 3, 4, 5].map(async (i) => {
      await new Promise((r) => setImmediate(r));
      return ips.allocate(`v${i}`, '172.16.0.1', 24);
    }),
  );
  assert.equal(new Set(got).size, 5, got.join(' '));
  db.close();
});

test('guest IPs: five concurrent allocations from five threads on one database file get five distinct IPs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-ips-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'banger.db');
  storeWithVms(file, 5).close();
  const dbUrl = pathToFileURL(join(import.meta.dirname, 'db.js')).href;
  const ipsUrl = pathToFileURL(join(import.meta.dirname, 'ips.js')).href;
  // Each thread opens its own connection, waits for the others at a shared barrier, then allocates.
  const barrier = new Int32Array(new SharedArrayBuffer(4));
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { openStore } = await import(workerData.dbUrl);
      const { IpRepo } = await import(workerData.ipsUrl);
      const db = openStore(workerData.file);
      Atomics.add(workerData.barrier, 0, 1);
      while (Atomics.load(workerData.barrier, 0) < 5) Atomics.wait(workerData.barrier, 0, Atomics.load(workerData.barrier, 0), 50);
      const ip = new IpRepo(db).allocate(workerData.vmId, '172.16.0.1', 24);
      db.close();
      parentPort.postMessage(ip);
    })().catch((e) => parentPort.postMessage('error: ' + e.message));
  `;
  const got = await Promise.all(
    [1, 2, 3, 4, 5].map(
      (i) =>
        new Promise<string>((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { file, dbUrl, ipsUrl, vmId: `v${i}`, barrier } });
          const timer = setTimeout(() => {
            void w.terminate();
            reject(new Error(`thread ${i} did not answer in 30 s`));
          }, 30_000);
          w.once('message', (m: string) => {
            clearTimeout(timer);
            resolve(m);
          });
          w.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        }),
    ),
  );
  assert.deepEqual(
    [...got].sort(),
    ['172.16.0.2', '172.16.0.3', '172.16.0.4', '172.16.0.5', '172.16.0.6'],
    got.join(' '),
  );
});
