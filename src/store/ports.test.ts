import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore } from './db.js';
import { ImageRepo } from './images.js';
import { PortRepo } from './ports.js';
import { VmRepo } from './vms.js';
import { imageRow, vmRow } from '../../test/helpers/rows.js';
import { parsePublication } from '../services/vm/portspec.js';

test('published ports: one host ADDR:PORT/proto per VM, all or none per add, gone with the VM', () => {
  const db = openStore(':memory:');
  new ImageRepo(db).insert(imageRow());
  const vms = new VmRepo(db);
  vms.insert(vmRow({ id: 'v1', name: 'one' }));
  vms.insert(vmRow({ id: 'v2', name: 'two' }));
  const ports = new PortRepo(db);
  ports.add('v1', [parsePublication('18080:8080'), parsePublication('5353:53/udp')]);
  assert.deepEqual(
    ports.list('v1').map((p) => `${p.address}:${p.hostPort}:${p.guestPort}/${p.protocol}`),
    ['127.0.0.1:18080:8080/tcp', '127.0.0.1:5353:53/udp'],
  );
  assert.throws(
    () => ports.add('v2', [parsePublication('9000:90'), parsePublication('127.0.0.1:18080:80')]),
    /port 127\.0\.0\.1:18080\/tcp is already published by VM "one"/,
  );
  assert.deepEqual(ports.list('v2'), [], 'nothing of a refused add is kept');
  ports.add('v2', [parsePublication('18080:80/udp')]);
  ports.remove('v1', parsePublication('18080:8080'));
  ports.add('v2', [parsePublication('18080:80')]);
  assert.equal(ports.holder(parsePublication('18080:1')), 'two');
  vms.delete('v2');
  assert.equal(ports.holder(parsePublication('18080:1')), undefined, 'the rows go with the VM');
  db.close();
});
