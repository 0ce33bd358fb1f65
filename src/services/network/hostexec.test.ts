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

test('with systemd-resolved: the bridge link routes ~vm to dns_listen, as shared steps after the bridge', async () => {
  const h = new FakeNetHost();
  const plan = hostNetPlan({ ...input, resolverDns: '127.0.0.1:42069' });
  const r = await applyHostNet(h.runner, plan, { euid: 0 });
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(h.resolved.get('br-fc'), { dns: '127.0.0.1:42069', domains: ['~vm'] });
  const cmds = h.commands();
  assert.ok(cmds.indexOf('resolvectl dns br-fc 127.0.0.1:42069') > cmds.indexOf('ip link set dev br-fc up'));
  // Shared like the bridge: a VM's stop leaves it; a failed run that made it reverts it.
  await removeHostNet(h.runner, plan, { euid: 0 });
  assert.ok(h.resolved.has('br-fc'));
  const fresh = new FakeNetHost();
  fresh.failOn = '-A POSTROUTING';
  await assert.rejects(applyHostNet(fresh.runner, plan, { euid: 0 }));
  assert.ok(fresh.commands().includes('resolvectl revert br-fc'));
  assert.deepEqual([...fresh.links.keys()], []);
  // Not root: through sudo -n like the other privileged steps.
  const user = new FakeNetHost();
  await applyHostNet(user.runner, plan, { euid: 1000 });
  assert.ok(user.commands().includes('sudo -n resolvectl domain br-fc ~vm'));
});

test('resolver routing is best effort: resolved refusing it skips those steps, names why, and the VM still gets its tap', async () => {
  const h = new FakeNetHost();
  h.resolvedDown = true;
  const r = await applyHostNet(h.runner, hostNetPlan({ ...input, resolverDns: '127.0.0.1:42069' }), { euid: 0 });
  assert.equal(r.skipped.length, 2);
  assert.match(r.skipped[0] ?? '', /^resolver: DNS of br-fc is 127\.0\.0\.1:42069: .*command failed/);
  assert.ok(h.links.has(TAP));
  assert.equal(h.rules.length, 1);
});

test('without resolver routing (no systemd-resolved) no resolvectl runs', async () => {
  const h = new FakeNetHost();
  await applyHostNet(h.runner, hostNetPlan(input), { euid: 0 });
  assert.ok(!h.commands().some((c) => c.includes('resolvectl')));
});

test('not root and no sudo installed: a precondition naming the step and the missing sudo', async () => {
  const h = new FakeNetHost();
  h.sudoInstalled = false;
  await assert.rejects(applyHostNet(h.runner, hostNetPlan(input), { euid: 1000 }), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'precondition');
    assert.equal(
      e.message,
      'bridge networking needs root for: ip link add name br-fc type bridge; the daemon is not root and sudo is not installed',
    );
    assert.match(e.hint ?? '', /run bangerd as root/);
    return true;
  });
  assert.deepEqual([...h.links.keys()], []);
});
