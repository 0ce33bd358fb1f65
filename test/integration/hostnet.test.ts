/**
 * Integration (network mode: bridge, inside a network namespace this file
 * creates and deletes): the bridge-mode host plan, its rollback, removal and
 * the sweep, with the real `ip`, `iptables` and `sysctl`. Every command the
 * code under test runs goes through `ip netns exec <ns>` (NetnsRunner), so the
 * host's own network namespace is never changed; no traffic is sent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { operationFailed } from '../../src/errors.js';
import { applyHostNet, removeHostNet } from '../../src/services/network/hostexec.js';
import { hostNetPlan, type HostNetInput } from '../../src/services/network/hostplan.js';
import { sweepHostNet } from '../../src/services/network/netsweep.js';
import { BridgeNetwork } from '../../src/services/network/bridge.js';
import { VmDnsServer } from '../../src/services/network/dns.js';
import { openStore } from '../../src/store/db.js';
import { ImageRepo } from '../../src/store/images.js';
import { IpRepo } from '../../src/store/ips.js';
import { VmRepo } from '../../src/store/vms.js';
import { imageRow, vmRow } from '../helpers/rows.js';
import { NodeRunner } from '../../src/system/node-runner.js';
import type {
  CommandRunner,
  DetachedOptions,
  RunOptions,
  RunResult,
  StreamingProcess,
} from '../../src/system/runner.js';
import { missingRoot, missingTools, requirements } from '../helpers/requirements.js';

const skip = requirements(
  [...missingRoot('to create a network namespace'), ...missingTools(['ip', 'iptables', 'sysctl', 'dig'])],
  'run as root; apt install iproute2 iptables procps dnsutils',
);

const host = new NodeRunner();
const NS = `banger-net-${randomBytes(4).toString('hex')}`;

/** Runs every command inside the test's namespace; `failOn` makes the first matching command fail (before it runs). */
class NetnsRunner implements CommandRunner {
  failOn: string | undefined;
  readonly seen: string[] = [];
  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.seen.push(argv.join(' '));
    if (this.failOn !== undefined && argv.join(' ').includes(this.failOn)) {
      this.failOn = undefined;
      return Promise.resolve({ code: 2, stdout: '', stderr: 'injected failure' });
    }
    return host.run(['ip', 'netns', 'exec', NS, ...argv], { timeoutMs: 30_000, ...opts });
  }
  async check(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const res = await this.run(argv, opts);
    if (res.code !== 0)
      throw operationFailed(`command failed (exit ${res.code}): ${argv.join(' ')}`, { detail: res.stderr });
    return res;
  }
  stream(_argv: readonly string[]): StreamingProcess {
    throw new Error('not used');
  }
  spawnDetached(_argv: readonly string[], _opts: DetachedOptions): Promise<number> {
    throw new Error('not used');
  }
}

const inNs = async (argv: string[]): Promise<RunResult> =>
  host.run(['ip', 'netns', 'exec', NS, ...argv], { timeoutMs: 30_000 });

/** What banger-relevant state the namespace holds: link names (with master), NAT POSTROUTING rules, ip_forward. */
async function nsState(): Promise<{ links: string[]; rules: string[]; forward: string }> {
  const links = JSON.parse((await inNs(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string; master?: string }[];
  const rules = (await inNs(['iptables', '-t', 'nat', '-S', 'POSTROUTING'])).stdout
    .split('\n')
    .filter((l) => l.startsWith('-A'));
  const forward = (await inNs(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
  return {
    links: links
      .filter((l) => l.ifname !== 'lo')
      .map((l) => (l.master ? `${l.ifname}@${l.master}` : l.ifname))
      .sort(),
    rules,
    forward,
  };
}

const A = 'a1'.repeat(16);
const B = 'b2'.repeat(16);
const cfg = { bridgeName: 'br-fc', bridgeIp: '172.16.0.1', cidr: 24 };
const vmA: HostNetInput = { ...cfg, vmId: A, guestIp: '172.16.0.2', nat: true };
const vmB: HostNetInput = { ...cfg, vmId: B, guestIp: '172.16.0.3', nat: false };
let hostForward = '';

before(async () => {
  if (skip) return;
  hostForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  await host.check(['ip', 'netns', 'add', NS], { timeoutMs: 30_000 });
});

after(async () => {
  if (skip) return;
  await host.run(['ip', 'netns', 'del', NS], { timeoutMs: 30_000 });
  assert.equal(
    readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'),
    hostForward,
    "the host's ip_forward is untouched",
  );
  const leaked = await host.run(['ip', 'link', 'show', 'dev', 'tap-a1a1a1a1a1a'], { timeoutMs: 30_000 });
  assert.notEqual(leaked.code, 0, 'no tap appeared in the host namespace');
});

test(
  'bridge mode in a namespace: two VMs, one tap each on the bridge; --nat gives exactly one rule, still one after a re-apply',
  { skip },
  async () => {
    const r = new NetnsRunner();
    await applyHostNet(r, hostNetPlan(vmA), { euid: 0 });
    await applyHostNet(r, hostNetPlan(vmB), { euid: 0 });
    let s = await nsState();
    assert.deepEqual(s.links, ['br-fc', 'tap-a1a1a1a1a1a@br-fc', 'tap-b2b2b2b2b2b@br-fc']);
    assert.deepEqual(s.rules, [
      `-A POSTROUTING -s 172.16.0.2/32 ! -o br-fc -m comment --comment "banger:${A}" -j MASQUERADE`,
    ]);
    assert.equal(s.forward, '1');
    const addr = await inNs(['ip', '-4', '-o', 'addr', 'show', 'dev', 'br-fc']);
    assert.match(addr.stdout, /inet 172\.16\.0\.1\/24/);

    // Stop/start: the tap goes with the VMM; applying again adds no second rule.
    await inNs(['ip', 'link', 'del', 'dev', 'tap-a1a1a1a1a1a']);
    await applyHostNet(r, hostNetPlan(vmA), { euid: 0 });
    s = await nsState();
    assert.equal(s.rules.length, 1, s.rules.join('\n'));
    assert.ok(s.links.includes('tap-a1a1a1a1a1a@br-fc'));
  },
);

test(
  'a failing step reverts this run for real: the tap and rule it made are gone, the existing bridge stays',
  { skip },
  async () => {
    const r = new NetnsRunner();
    const C = 'c3'.repeat(16);
    r.failOn = '-A POSTROUTING -s 172.16.0.4/32';
    await assert.rejects(
      applyHostNet(r, hostNetPlan({ ...cfg, vmId: C, guestIp: '172.16.0.4', nat: true }), { euid: 0 }),
      /injected|exit 2/,
    );
    const s = await nsState();
    assert.ok(!s.links.some((l) => l.startsWith('tap-c3')), s.links.join(' '));
    assert.ok(s.links.includes('br-fc'));
    assert.ok(!s.rules.some((l) => l.includes('172.16.0.4')));
  },
);

test('remove, then the sweep at "startup": no tap, no bridge, no rule remains', { skip }, async () => {
  const r = new NetnsRunner();
  assert.deepEqual(await removeHostNet(r, hostNetPlan(vmA), { euid: 0 }), []);
  let s = await nsState();
  assert.deepEqual(s.rules, []);
  assert.deepEqual(s.links, ['br-fc', 'tap-b2b2b2b2b2b@br-fc']);

  // VM B "vanished" (deleted while the daemon was down): the sweep finds its tagged tap; with no VM left, the bridge goes too.
  await applyHostNet(r, hostNetPlan({ ...vmB, nat: true }), { euid: 0 });
  const swept = await sweepHostNet(r, { liveVmIds: new Set(), bridgeName: 'br-fc', removeIdleBridge: true, euid: 0 });
  assert.deepEqual(swept.errors, []);
  assert.deepEqual(swept.taps, ['tap-b2b2b2b2b2b']);
  assert.equal(swept.rules.length, 1);
  assert.equal(swept.bridge, true);
  s = await nsState();
  assert.deepEqual(s, { links: [], rules: [], forward: '1' });
  assert.ok(r.seen.length > 0 && r.seen.every((c) => !c.startsWith('sudo')), 'as root, nothing goes through sudo');
});

test(
  'five VMs through BridgeNetwork with a real store and name server: five IPs, five taps, names via dig; after delete nothing remains',
  { skip },
  async (t) => {
    const db = openStore(':memory:');
    t.after(() => db.close());
    new ImageRepo(db).insert(imageRow());
    const vms = [1, 2, 3, 4, 5].map((n) => ({ id: `${n}`.repeat(32), name: `vm${n}`, nat: n % 2 === 1 }));
    for (const v of vms) new VmRepo(db).insert(vmRow({ id: v.id, name: v.name, networkMode: 'bridge', nat: v.nat }));
    const dns = new VmDnsServer({ host: '127.0.0.1', port: 0 });
    const { port } = await dns.start();
    t.after(() => dns.stop());
    const r = new NetnsRunner();
    const net = new BridgeNetwork({ config: cfg, runner: r, euid: 0, ips: new IpRepo(db), records: dns.records });
    const dig = async (name: string): Promise<string> => {
      const out = await host.check(['dig', '@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+short', name], {
        timeoutMs: 10_000,
      });
      const status = await host.check(['dig', '@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', name], {
        timeoutMs: 10_000,
      });
      return out.stdout.trim() || (/status: (\w+)/.exec(status.stdout)?.[1] ?? '?');
    };

    // Addresses for all five at once (create), then started two at a time.
    const addrs = await Promise.all(vms.map(async (v) => net.address(v.id)));
    assert.equal(new Set(addrs).size, 5, addrs.join(' '));
    for (let i = 0; i < vms.length; i += 2) await Promise.all(vms.slice(i, i + 2).map((v) => net.up(v)));
    let s = await nsState();
    assert.equal(s.links.filter((l) => l.startsWith('tap-') && l.endsWith('@br-fc')).length, 5, s.links.join(' '));
    assert.equal(s.rules.length, 3, 'one rule per --nat VM');
    for (const [k, v] of vms.entries()) assert.equal(await dig(`${v.name}.vm`), addrs[k]);
    assert.equal(await dig('nobody.vm'), 'NXDOMAIN');

    for (const v of vms) assert.deepEqual(await net.release(v), []);
    assert.equal(await dig('vm1.vm'), 'NXDOMAIN');
    const swept = await net.startup([], false);
    assert.deepEqual(swept.errors, []);
    s = await nsState();
    assert.deepEqual([s.links, s.rules], [[], []]);
  },
);
