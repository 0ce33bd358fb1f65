import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeNetHost } from '../../../test/fakes/nethost.js';
import { applyHostNet } from './hostexec.js';
import { hostNetPlan } from './hostplan.js';
import { parseTaggedLinks, parseTaggedRules, sweepHostNet } from './netsweep.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

test('parseTaggedLinks: only links whose alias is banger:<hex id>', () => {
  const json = JSON.stringify([
    { ifname: 'lo' },
    { ifname: 'tap-aaaaaaaaaaa', ifalias: `banger:${A}`, master: 'br-fc' },
    { ifname: 'tap-mine', ifalias: 'my own tap' },
    { ifname: 'tap-evil', ifalias: 'banger:../x' },
    { ifname: 7, ifalias: `banger:${B}` },
    null,
  ]);
  assert.deepEqual(parseTaggedLinks(json), [{ name: 'tap-aaaaaaaaaaa', vmId: A }]);
  for (const bad of ['', 'not json', '{}', '[1,2]', 'x'.repeat(9 * 1024 * 1024)])
    assert.deepEqual(parseTaggedLinks(bad), []);
});

test('parseTaggedRules: iptables -S lines with a banger comment, quotes removed', () => {
  const text = [
    '-P POSTROUTING ACCEPT',
    `-A POSTROUTING -s 172.16.0.2/32 ! -o br-fc -m comment --comment "banger:${A}" -j MASQUERADE`,
    `-A POSTROUTING -s 172.16.0.3/32 ! -o br-fc -m comment --comment banger:${B} -j MASQUERADE`,
    '-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE',
    '-A POSTROUTING -m comment --comment "docker rule" -j RETURN',
    '',
  ].join('\n');
  assert.deepEqual(parseTaggedRules(text), [
    {
      vmId: A,
      args: [
        '-A',
        'POSTROUTING',
        '-s',
        '172.16.0.2/32',
        '!',
        '-o',
        'br-fc',
        '-m',
        'comment',
        '--comment',
        `banger:${A}`,
        '-j',
        'MASQUERADE',
      ],
    },
    {
      vmId: B,
      args: [
        '-A',
        'POSTROUTING',
        '-s',
        '172.16.0.3/32',
        '!',
        '-o',
        'br-fc',
        '-m',
        'comment',
        '--comment',
        `banger:${B}`,
        '-j',
        'MASQUERADE',
      ],
    },
  ]);
});

const vm = (vmId: string, guestIp: string) =>
  hostNetPlan({ vmId, bridgeName: 'br-fc', bridgeIp: '172.16.0.1', cidr: 24, guestIp, nat: true });

test('sweep: removes taps and rules of VMs that no longer exist, keeps live ones and anything untagged', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, vm(A, '172.16.0.2'), { euid: 0 });
  await applyHostNet(h.runner, vm(B, '172.16.0.3'), { euid: 0 });
  h.links.set('tap-mine', { kind: 'tap', up: true });
  h.rules.push(['POSTROUTING', '-s', '10.0.0.0/8', '-j', 'MASQUERADE']);
  const r = await sweepHostNet(h.runner, {
    liveVmIds: new Set([A]),
    bridgeName: 'br-fc',
    removeIdleBridge: false,
    euid: 0,
  });
  assert.deepEqual(r.taps, ['tap-bbbbbbbbbbb']);
  assert.equal(r.rules.length, 1);
  assert.deepEqual(r.errors, []);
  assert.deepEqual([...h.links.keys()].sort(), ['br-fc', 'tap-aaaaaaaaaaa', 'tap-mine']);
  assert.deepEqual(
    h.rules.map((x) => x.join(' ')),
    [
      `POSTROUTING -s 172.16.0.2/32 ! -o br-fc -m comment --comment banger:${A} -j MASQUERADE`,
      'POSTROUTING -s 10.0.0.0/8 -j MASQUERADE',
    ],
  );
});

test('sweep: with no bridge-mode VM left the bridge goes too; listing failures are reported, not thrown', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, vm(A, '172.16.0.2'), { euid: 0 });
  const r = await sweepHostNet(h.runner, {
    liveVmIds: new Set(),
    bridgeName: 'br-fc',
    removeIdleBridge: true,
    euid: 0,
  });
  assert.equal(r.bridge, true);
  assert.deepEqual([...h.links.keys()], []);
  assert.deepEqual(h.rules, []);

  const broken = new FakeNetHost();
  broken.sudoRefuses = true;
  const r2 = await sweepHostNet(broken.runner, {
    liveVmIds: new Set(),
    bridgeName: 'br-fc',
    removeIdleBridge: true,
    euid: 1000,
  });
  assert.match(r2.errors.join('\n'), /listing NAT rules: sudo: a password is required/);
});
