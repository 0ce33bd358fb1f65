import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../../test/fakes/runner.js';
import { defaultConfig, type Config } from '../../config/config.js';
import type { DnsProbe } from '../network/dns.js';
import { networkChecks } from './network.js';

const VM = 'f'.repeat(32);
const base = defaultConfig({ cpus: 2, memBytes: 4 * 1024 ** 3 });
const bridgeCfg: Config = { ...base, networkMode: 'bridge' };

const brJson = (addr: string, prefixlen: number): string =>
  JSON.stringify([{ ifname: 'br-fc', operstate: 'UP', addr_info: [{ family: 'inet', local: addr, prefixlen }] }]);

interface Host {
  bins?: string[];
  bridge?: string | undefined;
  links?: { ifname: string; ifalias?: string }[];
  forward?: string;
  sudo?: boolean;
  /** `resolvectl domain br-fc` output; undefined: the link is unknown to resolved. */
  resolved?: string;
  /** Whether systemd-resolved runs (default: yes when resolvectl is there). */
  active?: boolean;
}

function runner(h: Host): FakeRunner {
  return new FakeRunner()
    .on(
      (a) => a.join(' ') === 'ip -j addr show dev br-fc',
      h.bridge ? { stdout: h.bridge } : { code: 1, stderr: 'Device "br-fc" does not exist.' },
    )
    .on((a) => a.join(' ') === 'ip -j link show', { stdout: JSON.stringify(h.links ?? [{ ifname: 'lo' }]) })
    .on((a) => a[0] === '/usr/sbin/iptables' && a[1] === '--version', { stdout: 'iptables v1.8.9 (nf_tables)\n' })
    .on((a) => a.join(' ') === 'sysctl -n net.ipv4.ip_forward', { stdout: `${h.forward ?? '0'}\n` })
    .on((a) => a.join(' ') === 'sudo -n true', h.sudo ? {} : { code: 1, stderr: 'sudo: a password is required' })
    .on(
      (a) => a.join(' ') === '/usr/sbin/resolvectl domain br-fc',
      h.resolved === undefined ? { code: 1, stderr: 'Failed to resolve interface "br-fc"' } : { stdout: h.resolved },
    );
}

async function rows(cfg: Config, h: Host, euid: number, dns: DnsProbe): Promise<Record<string, string>> {
  const r = runner(h);
  const bins = h.bins ?? ['ip', 'iptables'];
  const out = await networkChecks({
    config: cfg,
    runner: r,
    euid,
    which: async (b) => (bins.includes(b) ? `/usr/sbin/${b}` : undefined),
    probeDns: async () => dns,
    resolved: async () => h.active ?? true,
  });
  r.assertNoUnexpected();
  return Object.fromEntries(out.map((x) => [x.name, `${x.status} ${x.detail}${x.fix ? ` | ${x.fix}` : ''}`]));
}

test('network doctor, user mode on a bare host: all PASS, nothing needs privilege', async () => {
  const r = await rows(base, {}, 1000, { state: 'silent' });
  assert.match(r['network mode'] ?? '', /^PASS user/);
  assert.match(r['network privilege'] ?? '', /^WARN not root and `sudo -n` is refused \(only bridge mode needs it\)/);
  assert.match(r['bridge'] ?? '', /^PASS br-fc not present/);
  assert.match(r['taps'] ?? '', /^PASS 0 banger taps/);
  assert.match(r['iptables'] ?? '', /^PASS iptables v1\.8\.9/);
  assert.match(r['IP forwarding'] ?? '', /^PASS off/);
  assert.match(r['DNS listener'] ?? '', /^PASS not serving \(user mode/);
});

test('network doctor, bridge mode as root with a VM running: bridge, taps, forwarding and DNS', async () => {
  const r = await rows(
    bridgeCfg,
    {
      bridge: brJson('172.16.0.1', 24),
      links: [{ ifname: 'lo' }, { ifname: 'tap-fffffffffff', ifalias: `banger:${VM}` }, { ifname: 'tap-mine' }],
      forward: '1',
    },
    0,
    { state: 'answering' },
  );
  assert.equal(r['network privilege'], 'PASS root');
  assert.equal(r['bridge'], 'PASS br-fc 172.16.0.1/24 (up)');
  assert.match(r['taps'] ?? '', /^PASS 1 banger tap .*: tap-fffffffffff$/);
  assert.equal(r['IP forwarding'], 'PASS on');
  assert.equal(r['DNS listener'], 'PASS banger answers <name>.vm on 127.0.0.1:42069');
});

test('network doctor, bridge mode problems: FAIL with a fix naming the value', async () => {
  const r = await rows(bridgeCfg, { bridge: brJson('10.9.9.1', 16), bins: ['ip'] }, 1000, {
    state: 'other',
    detail: 'an unexpected DNS answer (rcode 2): another server uses 127.0.0.1:42069?',
  });
  assert.match(r['network privilege'] ?? '', /^FAIL not root and `sudo -n` is refused \| run bangerd as root/);
  assert.match(
    r['bridge'] ?? '',
    /^FAIL br-fc exists without 172\.16\.0\.1\/24 \(has 10\.9\.9\.1\/16\) \| set bridge_ip/,
  );
  assert.match(r['iptables'] ?? '', /^WARN not found .* \| apt-get install iptables/);
  assert.match(r['DNS listener'] ?? '', /^FAIL an unexpected DNS answer .* \| set dns_listen/);
});

test('network doctor: bridge mode without ip fails naming the package; a silent DNS port warns', async () => {
  const r = await rows(bridgeCfg, { bins: [], sudo: true }, 1000, { state: 'silent' });
  assert.match(r['network privilege'] ?? '', /^PASS not root; passwordless sudo/);
  assert.equal(r['bridge'], 'FAIL ip not found | apt-get install iproute2');
  assert.equal(r['taps'], undefined);
  assert.match(r['DNS listener'] ?? '', /^WARN nothing answers on 127\.0\.0\.1:42069/);
});

test('network doctor, resolver routing (bridge mode only): routed, not routed, no systemd-resolved', async () => {
  const dns: DnsProbe = { state: 'answering' };
  const routed = await rows(
    bridgeCfg,
    { bins: ['ip', 'iptables', 'resolvectl'], resolved: 'Link 5 (br-fc): ~vm\n' },
    0,
    dns,
  );
  assert.equal(routed['resolver routing'], 'PASS systemd-resolved sends *.vm to br-fc');
  const notRouted = await rows(
    bridgeCfg,
    { bins: ['ip', 'iptables', 'resolvectl'], resolved: 'Link 5 (br-fc):\n' },
    0,
    dns,
  );
  assert.equal(
    notRouted['resolver routing'],
    "WARN systemd-resolved does not route ~vm on br-fc | resolvectl dns br-fc 127.0.0.1:42069 && resolvectl domain br-fc '~vm'",
  );
  const noLink = await rows(bridgeCfg, { bins: ['ip', 'iptables', 'resolvectl'] }, 0, dns);
  assert.match(
    noLink['resolver routing'] ?? '',
    /^WARN .*\(no such link yet: banger routes it when the bridge comes up\) \| resolvectl dns/,
  );
  const stopped = await rows(bridgeCfg, { bins: ['ip', 'iptables', 'resolvectl'], active: false }, 0, dns);
  assert.match(
    stopped['resolver routing'] ?? '',
    /^WARN no systemd-resolved.* \| with dnsmasq: /,
    'resolvectl without resolved running',
  );
  const none = await rows(bridgeCfg, {}, 0, dns);
  assert.match(
    none['resolver routing'] ?? '',
    /^WARN no systemd-resolved.* \| with dnsmasq: echo 'server=\/vm\/127\.0\.0\.1#42069'/,
  );
  assert.equal((await rows(base, {}, 0, dns))['resolver routing'], undefined, 'user mode: no row');
});
