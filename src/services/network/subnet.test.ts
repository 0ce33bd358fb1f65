import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestCapacity, intToIp, ipToInt, isGuestAddress, lowestFree, subnet } from './subnet.js';

test('subnet: network, broadcast and bridge of bridge_ip/cidr', () => {
  const cases: { ip: string; cidr: number; network: string; broadcast: string; capacity: number }[] = [
    { ip: '172.16.0.1', cidr: 24, network: '172.16.0.0', broadcast: '172.16.0.255', capacity: 253 },
    { ip: '10.20.0.1', cidr: 16, network: '10.20.0.0', broadcast: '10.20.255.255', capacity: 65533 },
    { ip: '192.168.7.130', cidr: 25, network: '192.168.7.128', broadcast: '192.168.7.255', capacity: 125 },
    { ip: '10.0.0.1', cidr: 30, network: '10.0.0.0', broadcast: '10.0.0.3', capacity: 1 },
  ];
  for (const c of cases) {
    const s = subnet(c.ip, c.cidr);
    assert.equal(intToIp(s.network), c.network, c.ip);
    assert.equal(intToIp(s.broadcast), c.broadcast, c.ip);
    assert.equal(intToIp(s.bridge), c.ip);
    assert.equal(guestCapacity(s), c.capacity, c.ip);
  }
  assert.equal(ipToInt('255.255.255.255'), 2 ** 32 - 1);
});

test('subnet: bad input names the value', () => {
  assert.throws(
    () => subnet('172.16.0.0', 24),
    /bridge_ip 172\.16\.0\.0 is the network or broadcast address of 172\.16\.0\.0\/24/,
  );
  assert.throws(() => subnet('172.16.0.255', 24), /broadcast/);
  assert.throws(() => subnet('172.16.0.1', 31), /invalid cidr 31/);
  assert.throws(() => subnet('172.16.0.300', 24), /not an IPv4 address: "172\.16\.0\.300"/);
});

test('lowestFree: skips network, bridge and broadcast, takes the lowest free, undefined when full', () => {
  const s = subnet('10.0.0.2', 29); // 10.0.0.0/29: hosts .1-.6, bridge .2
  assert.equal(lowestFree(s, new Set()), '10.0.0.1');
  assert.equal(lowestFree(s, new Set(['10.0.0.1'])), '10.0.0.3');
  assert.equal(lowestFree(s, new Set(['10.0.0.1', '10.0.0.3', '10.0.0.5'])), '10.0.0.4');
  assert.equal(lowestFree(s, new Set(['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'])), undefined);
  assert.equal(isGuestAddress(s, '10.0.0.2'), false, 'bridge');
  assert.equal(isGuestAddress(s, '10.0.0.7'), false, 'broadcast');
  assert.equal(isGuestAddress(s, '10.0.0.0'), false, 'network');
  assert.equal(isGuestAddress(s, '10.0.0.8'), false, 'outside');
  assert.equal(isGuestAddress(s, '10.0.0.6'), true);
});
