import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostNetPlan, needsPrivilege, tapName, withPrivilege, type HostNetInput } from './hostplan.js';

const VM = '0123456789abcdef0123456789abcdef';
const base: HostNetInput = {
  vmId: VM,
  bridgeName: 'br-fc',
  bridgeIp: '172.16.0.1',
  cidr: 24,
  guestIp: '172.16.0.2',
  nat: false,
};
const line = (argv: readonly string[] | undefined): string | undefined => argv?.join(' ');

test('tap names: tap-<id prefix>, at most 15 characters (IFNAMSIZ)', () => {
  assert.equal(tapName(VM), 'tap-0123456789a');
  assert.equal(tapName(VM).length, 15);
});

const cases: {
  name: string;
  input: HostNetInput;
  steps: { argv: string; check?: string; undo?: string; shared?: boolean }[];
}[] = [
  {
    name: 'bridge mode, no NAT: bridge if missing, address, up; tap tagged, attached, up',
    input: base,
    steps: [
      {
        check: 'ip link show dev br-fc',
        argv: 'ip link add name br-fc type bridge',
        undo: 'ip link del dev br-fc',
        shared: true,
      },
      { argv: 'ip addr replace 172.16.0.1/24 dev br-fc', shared: true },
      { argv: 'ip link set dev br-fc up', shared: true },
      {
        check: 'ip link show dev tap-0123456789a',
        argv: 'ip tuntap add dev tap-0123456789a mode tap',
        undo: 'ip link del dev tap-0123456789a',
      },
      { argv: `ip link set dev tap-0123456789a alias banger:${VM}` },
      { argv: 'ip link set dev tap-0123456789a master br-fc' },
      { argv: 'ip link set dev tap-0123456789a up' },
    ],
  },
  {
    name: '--nat, custom bridge and subnet, tap owned by a uid: forwarding on and one MASQUERADE rule, check before add',
    input: {
      ...base,
      nat: true,
      bridgeName: 'br-fc-dev',
      bridgeIp: '10.20.0.1',
      cidr: 16,
      guestIp: '10.20.3.4',
      tapOwner: 1000,
    },
    steps: [
      {
        check: 'ip link show dev br-fc-dev',
        argv: 'ip link add name br-fc-dev type bridge',
        undo: 'ip link del dev br-fc-dev',
        shared: true,
      },
      { argv: 'ip addr replace 10.20.0.1/16 dev br-fc-dev', shared: true },
      { argv: 'ip link set dev br-fc-dev up', shared: true },
      {
        check: 'ip link show dev tap-0123456789a',
        argv: 'ip tuntap add dev tap-0123456789a mode tap user 1000',
        undo: 'ip link del dev tap-0123456789a',
      },
      { argv: `ip link set dev tap-0123456789a alias banger:${VM}` },
      { argv: 'ip link set dev tap-0123456789a master br-fc-dev' },
      { argv: 'ip link set dev tap-0123456789a up' },
      { argv: 'sysctl -q -w net.ipv4.ip_forward=1', shared: true },
      {
        check: `iptables -w 5 -t nat -C POSTROUTING -s 10.20.3.4/32 ! -o br-fc-dev -m comment --comment banger:${VM} -j MASQUERADE`,
        argv: `iptables -w 5 -t nat -A POSTROUTING -s 10.20.3.4/32 ! -o br-fc-dev -m comment --comment banger:${VM} -j MASQUERADE`,
        undo: `iptables -w 5 -t nat -D POSTROUTING -s 10.20.3.4/32 ! -o br-fc-dev -m comment --comment banger:${VM} -j MASQUERADE`,
      },
    ],
  },
];

for (const c of cases) {
  test(`host network plan: ${c.name}`, () => {
    const plan = hostNetPlan(c.input);
    assert.equal(plan.tap, 'tap-0123456789a');
    assert.deepEqual(
      plan.steps.map((s) => {
        const o: { argv: string; check?: string; undo?: string; shared?: boolean } = { argv: line(s.argv) as string };
        if (s.check) o.check = line(s.check);
        if (s.undo) o.undo = line(s.undo);
        if (s.shared) o.shared = true;
        return o;
      }),
      c.steps,
    );
  });
}

test('privilege: root runs as is; otherwise exactly the privileged steps go through sudo -n', () => {
  const table: { argv: string[]; privileged: boolean }[] = [
    { argv: ['ip', 'link', 'show', 'dev', 'br-fc'], privileged: false },
    { argv: ['ip', '-j', 'link', 'show'], privileged: false },
    { argv: ['ip', 'link', 'add', 'name', 'br-fc', 'type', 'bridge'], privileged: true },
    { argv: ['ip', 'link', 'set', 'dev', 'x', 'up'], privileged: true },
    { argv: ['ip', 'link', 'del', 'dev', 'x'], privileged: true },
    { argv: ['ip', 'addr', 'replace', '1.2.3.4/24', 'dev', 'x'], privileged: true },
    { argv: ['ip', 'tuntap', 'add', 'dev', 'x', 'mode', 'tap'], privileged: true },
    { argv: ['iptables', '-t', 'nat', '-C', 'POSTROUTING'], privileged: true },
    { argv: ['iptables', '-t', 'nat', '-S', 'POSTROUTING'], privileged: true },
    { argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], privileged: true },
  ];
  for (const r of table) {
    assert.equal(needsPrivilege(r.argv), r.privileged, r.argv.join(' '));
    assert.deepEqual(withPrivilege(r.argv, 0), r.argv, `as root: ${r.argv.join(' ')}`);
    assert.deepEqual(withPrivilege(r.argv, 1000), r.privileged ? ['sudo', '-n', ...r.argv] : r.argv, r.argv.join(' '));
  }
});

test('host network plan: bad input is refused naming the value', () => {
  const table: { over: Partial<HostNetInput>; message: RegExp }[] = [
    { over: { vmId: 'ABC' }, message: /not a VM id for a tap: "ABC"/ },
    { over: { vmId: '0123456789ab; rm' }, message: /not a VM id/ },
    { over: { bridgeName: 'eth0' }, message: /invalid bridge_name "eth0"/ },
    { over: { guestIp: '172.16.0.1' }, message: /guest IP 172\.16\.0\.1 is not a guest address of 172\.16\.0\.1\/24/ },
    { over: { guestIp: '10.0.0.2' }, message: /guest IP 10\.0\.0\.2 is not a guest address/ },
    { over: { guestIp: '172.16.0.255' }, message: /not a guest address/ },
    { over: { cidr: 31 }, message: /invalid cidr 31/ },
  ];
  for (const r of table) assert.throws(() => hostNetPlan({ ...base, ...r.over }), r.message, JSON.stringify(r.over));
});
