import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeNetHost } from '../../../test/fakes/nethost.js';
import { AppError } from '../../errors.js';
import { applyHostNet, removeHostNet } from './hostexec.js';
import { hostNetPlan, natRule, type HostNetInput } from './hostplan.js';

const VM = 'aaaaaaaaaaaabbbbbbbbbbbbcccccccc';
const input: HostNetInput = {
  vmId: VM,
  bridgeName: 'br-fc',
  bridgeIp: '172.16.0.1',
  cidr: 24,
  guestIp: '172.16.0.2',
  nat: true,
};
const TAP = 'tap-aaaaaaaaaaa';

test('apply on a bare host: bridge, tap tagged and attached, forwarding, exactly one NAT rule', async () => {
  const h = new FakeNetHost();
  const r = await applyHostNet(h.runner, hostNetPlan(input), { euid: 0 });
  assert.equal(r.applied.length, 9);
  assert.equal(h.links.get('br-fc')?.up, true);
  assert.deepEqual(h.links.get(TAP), { kind: 'tap', up: true, master: 'br-fc', alias: `banger:${VM}` });
  assert.equal(h.ipForward, true);
  assert.deepEqual(h.rules, [natRule('-A', input).slice(6)]);
  h.runner.assertNoUnexpected();
});

test('apply twice (stop/start, or a start after a crash): still one bridge, one tap, one rule', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, hostNetPlan(input), { euid: 0 });
  // The tap went with the VMM (stop); the bridge and the rule stayed.
  h.links.delete(TAP);
  const again = await applyHostNet(h.runner, hostNetPlan(input), { euid: 0 });
  assert.equal(h.rules.length, 1, 'no second MASQUERADE rule');
  assert.ok(!again.applied.includes('bridge br-fc'), 'existing bridge not re-added');
  assert.ok(!again.applied.includes('NAT for 172.16.0.2'), 'existing rule not re-added');
  assert.ok(again.applied.includes(`tap ${TAP}`));
});

test('without --nat: no forwarding, no rule', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, hostNetPlan({ ...input, nat: false }), { euid: 0 });
  assert.deepEqual(h.rules, []);
  assert.equal(h.ipForward, false);
  assert.ok(!h.commands().some((c) => c.startsWith('iptables') || c.startsWith('sysctl')));
});

for (const failAt of ['master br-fc', `${TAP} up`, '-A POSTROUTING', 'ip_forward', `alias banger`]) {
  test(`a failure at "${failAt}" reverts everything this run made, bridge included, and rethrows`, async () => {
    const h = new FakeNetHost();
    h.failOn = failAt;
    await assert.rejects(applyHostNet(h.runner, hostNetPlan(input), { euid: 0 }), (e: unknown) => {
      assert.ok(e instanceof AppError);
      assert.match(e.message, /command failed \(exit 2\)/);
      assert.match(e.detail ?? '', /Operation not permitted/);
      return true;
    });
    assert.deepEqual([...h.links.keys()], [], 'no tap, no bridge left');
    assert.deepEqual(h.rules, []);
  });
}

test('two starts racing for the bridge: the loser sees it made by the other and goes on, and does not undo it', async () => {
  const h = new FakeNetHost();
  h.beforeCommand = (cmd) => {
    if (cmd === 'ip link add name br-fc type bridge') h.links.set('br-fc', { kind: 'bridge', up: false });
  };
  const r = await applyHostNet(h.runner, hostNetPlan(input), { euid: 0 });
  assert.ok(!r.applied.includes('bridge br-fc'), 'not counted as ours');
  assert.equal(h.links.get(TAP)?.master, 'br-fc');
  h.beforeCommand = undefined;
  h.links.delete(TAP);
  h.failOn = '-A POSTROUTING';
  h.rules.length = 0;
  await assert.rejects(applyHostNet(h.runner, hostNetPlan(input), { euid: 0 }));
  assert.ok(h.links.has('br-fc'), "a later failure does not remove the other start's bridge");
});

test('a failure leaves a bridge that existed before (other VMs use it) in place', async () => {
  const h = new FakeNetHost();
  h.links.set('br-fc', { kind: 'bridge', up: true });
  h.failOn = '-A POSTROUTING';
  await assert.rejects(applyHostNet(h.runner, hostNetPlan(input), { euid: 0 }));
  assert.deepEqual([...h.links.keys()], ['br-fc']);
});

test('not root: privileged steps through sudo -n, reading links without; a refused sudo is a precondition naming the step', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, hostNetPlan(input), { euid: 1000 });
  for (const c of h.commands()) {
    if (c.startsWith('ip link show')) assert.ok(!c.startsWith('sudo'), c);
    else assert.match(c, /^sudo -n /, c);
  }
  const refused = new FakeNetHost();
  refused.sudoRefuses = true;
  await assert.rejects(applyHostNet(refused.runner, hostNetPlan(input), { euid: 1000 }), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'precondition');
    assert.match(e.message, /bridge networking needs root for: ip link add name br-fc type bridge/);
    assert.match(e.hint ?? '', /sudo/);
    return true;
  });
});

test('remove: the rule (every copy) and the tap go, the shared bridge stays; removing again is a no-op', async () => {
  const h = new FakeNetHost();
  const plan = hostNetPlan(input);
  await applyHostNet(h.runner, plan, { euid: 0 });
  h.rules.push(natRule('-A', input).slice(6)); // a duplicate, added by hand
  assert.deepEqual(await removeHostNet(h.runner, plan, { euid: 0 }), []);
  assert.deepEqual(h.rules, []);
  assert.deepEqual([...h.links.keys()], ['br-fc']);
  assert.deepEqual(await removeHostNet(h.runner, plan, { euid: 0 }), []);
});
