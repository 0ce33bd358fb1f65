import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeNetHost } from '../../../test/fakes/nethost.js';
import { imageRow, vmRow } from '../../../test/helpers/rows.js';
import { openStore } from '../../store/db.js';
import { ImageRepo } from '../../store/images.js';
import { IpRepo } from '../../store/ips.js';
import { VmRepo } from '../../store/vms.js';
import { BridgeNetwork, bridgeGuestDns, type BridgeVm } from './bridge.js';
import { answer, VmRecords } from './dns.js';
import * as dnsPacket from 'dns-packet';

const A: BridgeVm = { id: 'a'.repeat(32), name: 'alpha', nat: true };
const B: BridgeVm = { id: 'b'.repeat(32), name: 'beta', nat: false };

function setup() {
  const db = openStore(':memory:');
  new ImageRepo(db).insert(imageRow());
  for (const v of [A, B]) new VmRepo(db).insert(vmRow({ id: v.id, name: v.name, networkMode: 'bridge', nat: v.nat }));
  const host = new FakeNetHost();
  const records = new VmRecords();
  const ips = new IpRepo(db);
  const net = new BridgeNetwork({
    config: { bridgeName: 'br-fc', bridgeIp: '172.16.0.1', cidr: 24 },
    runner: host.runner,
    euid: 0,
    ips,
    records,
  });
  return { db, host, records, ips, net };
}

const resolve = (records: VmRecords, name: string): string => {
  const out = answer(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] }), records);
  const d = dnsPacket.decode(out as Buffer) as unknown as { rcode: string; answers: { data: string }[] };
  return d.rcode === 'NOERROR' ? (d.answers[0]?.data ?? 'NODATA') : d.rcode;
};

test('bridge network: start gives distinct IPs, taps, a name each; --nat one rule; stop/start keeps IP and one rule; delete frees all', async () => {
  const { host, records, net } = setup();
  const a = await net.up(A);
  const b = await net.up(B);
  assert.deepEqual(a, { ip: '172.16.0.2/24', address: '172.16.0.2', gateway: '172.16.0.1', tap: 'tap-aaaaaaaaaaa' });
  assert.equal(b.address, '172.16.0.3');
  assert.equal(resolve(records, 'alpha.vm'), '172.16.0.2');
  assert.equal(resolve(records, 'beta.vm'), '172.16.0.3');
  assert.equal(host.rules.length, 1, 'only the --nat VM has a rule');

  assert.deepEqual(await net.down(A), []);
  assert.equal(resolve(records, 'alpha.vm'), 'NXDOMAIN');
  assert.equal(host.links.has('tap-aaaaaaaaaaa'), false);
  const again = await net.up(A);
  assert.equal(again.address, '172.16.0.2', 'same IP after stop/start');
  assert.equal(host.rules.length, 1, 'still one rule');

  await net.release(A);
  await net.release(B);
  assert.deepEqual(host.rules, []);
  assert.deepEqual([...host.links.keys()], ['br-fc']);
  assert.equal(resolve(records, 'alpha.vm'), 'NXDOMAIN');
  assert.equal(net.address(B.id), '172.16.0.2', 'freed addresses are handed out again, lowest first');
});

test('bridge network: a failed start reverts the host, publishes no name, keeps the lease', async () => {
  const { host, records, ips, net } = setup();
  host.failOn = '-A POSTROUTING';
  await assert.rejects(net.up(A));
  assert.deepEqual([...host.links.keys()], []);
  assert.equal(resolve(records, 'alpha.vm'), 'NXDOMAIN');
  assert.equal(ips.get(A.id), '172.16.0.2');
});

test('bridge network startup (after kill -9): names rebuilt for running VMs, state of the others swept', async () => {
  const { host, records, net } = setup();
  await net.up(A);
  await net.up(B);
  records.replaceAll([]); // a fresh daemon knows no names
  // Only A still runs; B's VMM died with the daemon.
  const swept = await net.startup([A], true);
  assert.deepEqual(swept.taps, ['tap-bbbbbbbbbbb']);
  assert.equal(resolve(records, 'alpha.vm'), '172.16.0.2');
  assert.equal(resolve(records, 'beta.vm'), 'NXDOMAIN');
  assert.ok(host.links.has('br-fc'));
  const none = await net.startup([], false);
  assert.equal(none.bridge, true);
  assert.deepEqual([...host.links.keys()], []);
  assert.deepEqual(host.rules, []);
});

test('bridge guest DNS: the bridge address only when dns_listen is on it at port 53', () => {
  assert.equal(bridgeGuestDns('172.16.0.1:53', '172.16.0.1'), '172.16.0.1');
  assert.equal(bridgeGuestDns('127.0.0.1:42069', '172.16.0.1'), undefined);
  assert.equal(bridgeGuestDns('172.16.0.1:5353', '172.16.0.1'), undefined);
});
