import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeIdentity, encodeIdentity, type Identity } from './payloads-identity.js';

const full: Identity = {
  hostname: 'vm-2',
  entropy: Buffer.from([1, 2, 3]),
  machineId: '0123456789abcdef0123456789abcdef',
  clockNs: 1_796_000_000_123_456_789n,
  network: { ip: '10.0.2.15/24', gateway: '10.0.2.2', dns: '10.0.2.3', mac: '52:54:00:0a:0b:0c' },
  reseed: true,
  openGate: true,
};

test('SET_IDENTITY v2 records: the exact bytes (the C agent decodes the same vector)', () => {
  const hex = encodeIdentity(full).toString('hex');
  assert.equal(
    hex,
    [
      '010004' + Buffer.from('vm-2').toString('hex'),
      '020003010203',
      '030010' + '0123456789abcdef0123456789abcdef',
      '040008' + 1_796_000_000_123_456_789n.toString(16).padStart(16, '0'),
      '050013' + '0a00020f' + '18' + '0a000202' + '5254000a0b0c' + '0a000203',
      '060000',
      '070000',
    ].join(''),
  );
});

test('SET_IDENTITY v2 round-trips, with and without dns and flags', () => {
  const cases: Identity[] = [
    full,
    { network: { ip: '192.168.1.7/32', gateway: '192.168.1.1', mac: 'fe:00:00:00:00:01' } },
    { machineId: 'ffffffffffffffffffffffffffffffff', clockNs: 1n },
    { openGate: true },
    { reseed: true, rngSample: true },
    {},
  ];
  for (const c of cases) assert.deepEqual(decodeIdentity(encodeIdentity(c)), c);
  // false flags are not sent at all
  assert.equal(encodeIdentity({ reseed: false, openGate: false, rngSample: false }).length, 0);
  assert.equal(encodeIdentity({ rngSample: true }).toString('hex'), '080000');
});

test('SET_IDENTITY encoder refuses bad values by name', () => {
  const net = { ip: '10.0.2.15/24', gateway: '10.0.2.2', mac: '52:54:00:0a:0b:0c' };
  const cases: [string, Identity, RegExp][] = [
    ['machine-id short', { machineId: 'abc' }, /machine-id "abc" is not 32 lowercase hex/],
    ['machine-id upper', { machineId: 'A'.repeat(32) }, /machine-id "A{32}"/],
    ['machine-id zero', { machineId: '0'.repeat(32) }, /not all zero/],
    ['clock zero', { clockNs: 0n }, /clock 0 ns is not a positive u64/],
    ['clock big', { clockNs: 1n << 64n }, /clock 18446744073709551616 ns/],
    [
      'no prefix',
      { network: { ...net, ip: '10.0.2.15' } },
      /guest address "10\.0\.2\.15" is not an IPv4 address with a \/1\.\.\/32/,
    ],
    ['prefix 33', { network: { ...net, ip: '10.0.2.15/33' } }, /"10\.0\.2\.15\/33"/],
    ['bad ip', { network: { ...net, ip: '10.0.2/24' } }, /guest address "10\.0\.2" is not an IPv4 address/],
    ['gateway', { network: { ...net, gateway: 'gw' } }, /gateway "gw" is not an IPv4 address/],
    ['dns', { network: { ...net, dns: '::1' } }, /dns server "::1" is not an IPv4 address/],
    [
      'mac',
      { network: { ...net, mac: '52:54:00:0A:0B:0C' } },
      /MAC "52:54:00:0A:0B:0C" is not six lowercase hex pairs/,
    ],
    ['multicast', { network: { ...net, mac: '01:00:5e:00:00:01' } }, /MAC 01:00:5e:00:00:01 is a multicast/],
  ];
  for (const [name, id, re] of cases) assert.throws(() => encodeIdentity(id), re, name);
});

test('SET_IDENTITY decoder refuses malformed records', () => {
  const rec = (tag: number, v: number[]): Buffer => Buffer.from([tag, v.length >> 8, v.length & 0xff, ...v]);
  const net = [10, 0, 2, 15, 24, 10, 0, 2, 2, 0x52, 0x54, 0, 1, 2, 3];
  const cases: [string, Buffer, RegExp][] = [
    ['machine-id length', rec(3, [1, 2]), /machine-id of 2 bytes/],
    ['machine-id zero', rec(3, new Array<number>(16).fill(0)), /machine-id of 16 bytes/],
    ['clock length', rec(4, [1]), /clock record of 1 bytes/],
    ['network length', rec(5, net.slice(0, 14)), /network record of 14 bytes \(15 or 19\)/],
    ['network prefix', rec(5, [...net.slice(0, 4), 0, ...net.slice(5)]), /network prefix 0/],
    ['network multicast', rec(5, [...net.slice(0, 9), 1, ...net.slice(10)]), /multicast MAC 01:54/],
    ['reseed value', rec(6, [1]), /reseed record of 1 bytes/],
    ['gate value', rec(7, [0]), /open-gate record of 1 bytes/],
    ['rng-sample value', rec(8, [1]), /rng-sample record of 1 bytes/],
    ['unknown', rec(9, []), /record tag 9 is unknown/],
  ];
  for (const [name, b, re] of cases) assert.throws(() => decodeIdentity(b), re, name);
});
