import type { Config } from '../../config/config.js';
import type { DnsProbe } from '../network/dns.js';
import { parseTaggedLinks } from '../network/netsweep.js';
import { TAP_PREFIX } from '../network/hostplan.js';
import type { CommandRunner } from '../../system/runner.js';
import type { CheckRow, CheckStatus } from './checks.js';

/*
 * `doctor` rows for host networking (SPEC §7.3): mode, privilege, bridge,
 * taps, iptables, IPv4 forwarding, the DNS listener. Read-only: nothing here
 * changes the host. In user mode a missing piece is a warning (only bridge
 * mode needs it); in bridge mode it fails.
 */

export interface NetworkDoctorInput {
  config: Config;
  runner: CommandRunner;
  euid: number;
  which: (bin: string) => Promise<string | undefined>;
  probeDns: (listen: string) => Promise<DnsProbe>;
  /** Whether systemd-resolved runs (HostProbe.systemdResolved); omitted: resolvectl being installed. */
  resolved?: () => Promise<boolean>;
}

const T = { timeoutMs: 5000 };

async function tryRun(
  i: NetworkDoctorInput,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return i.runner.run(argv, T).catch((e: unknown) => ({ code: -1, stdout: '', stderr: (e as Error).message }));
}

export async function networkChecks(i: NetworkDoctorInput): Promise<CheckRow[]> {
  const c = i.config;
  const bridgeMode = c.networkMode === 'bridge';
  const bad: CheckStatus = bridgeMode ? 'FAIL' : 'WARN';
  const onlyBridge = bridgeMode ? '' : ' (only bridge mode needs it)';
  const rows: CheckRow[] = [];

  rows.push({
    name: 'network mode',
    status: 'PASS',
    detail: bridgeMode
      ? `bridge (${c.bridgeName} ${c.bridgeIp}/${c.cidr}, names on ${c.dnsListen})`
      : 'user (rootless qemu networking; network_mode = "bridge" gives every VM an address and a <name>.vm name)',
  });

  if (i.euid === 0) rows.push({ name: 'network privilege', status: 'PASS', detail: 'root' });
  else {
    const sudo = await tryRun(i, ['sudo', '-n', 'true']);
    rows.push(
      sudo.code === 0
        ? { name: 'network privilege', status: 'PASS', detail: 'not root; passwordless sudo for the bridge steps' }
        : {
            name: 'network privilege',
            status: bad,
            detail: `not root and \`sudo -n\` is refused${onlyBridge}`,
            fix: 'run bangerd as root, or allow passwordless sudo for ip, iptables and sysctl',
          },
    );
  }

  const ipPath = await i.which('ip');
  if (!ipPath) {
    rows.push({
      name: 'bridge',
      status: bad,
      detail: `ip not found${onlyBridge}`,
      fix: 'apt-get install iproute2',
    });
  } else {
    rows.push(await bridgeRow(i, bad));
    const links = await tryRun(i, ['ip', '-j', 'link', 'show']);
    const taps = links.code === 0 ? parseTaggedLinks(links.stdout) : [];
    rows.push(
      links.code === 0
        ? {
            name: 'taps',
            status: 'PASS',
            detail: `${taps.length} banger tap${taps.length === 1 ? '' : 's'} (${TAP_PREFIX}<vm id>, alias banger:<vm id>)${taps.length ? `: ${taps.map((t) => t.name).join(', ')}` : ''}`,
          }
        : { name: 'taps', status: 'WARN', detail: `cannot list links: ${links.stderr.trim()}` },
    );
  }

  const iptables = await i.which('iptables');
  if (!iptables)
    rows.push({
      name: 'iptables',
      status: 'WARN',
      detail: 'not found (--nat in bridge mode needs it)',
      fix: 'apt-get install iptables',
    });
  else {
    const v = await tryRun(i, [iptables, '--version']);
    rows.push({ name: 'iptables', status: 'PASS', detail: v.stdout.trim().split('\n')[0] || iptables });
  }

  const fwd = await tryRun(i, ['sysctl', '-n', 'net.ipv4.ip_forward']);
  const on = fwd.stdout.trim();
  rows.push(
    fwd.code === 0 && (on === '1' || on === '0')
      ? {
          name: 'IP forwarding',
          status: 'PASS',
          detail: on === '1' ? 'on' : 'off (turned on when a --nat VM starts in bridge mode)',
        }
      : { name: 'IP forwarding', status: 'WARN', detail: `cannot read net.ipv4.ip_forward: ${fwd.stderr.trim()}` },
  );

  rows.push(await dnsRow(i, bridgeMode));
  if (bridgeMode) rows.push(await resolverRow(i));
  return rows;
}

/** The one-line recipe that sends `*.vm` lookups to banger's name server, for this host's resolver. */
export function resolverRecipe(c: Pick<Config, 'bridgeName' | 'dnsListen'>, resolved: boolean): string {
  const [host, port] = c.dnsListen.split(':');
  return resolved
    ? `resolvectl dns ${c.bridgeName} ${c.dnsListen} && resolvectl domain ${c.bridgeName} '~vm'`
    : `with dnsmasq: echo 'server=/vm/${host}#${port}' > /etc/dnsmasq.d/banger-vm.conf && systemctl restart dnsmasq (or ask directly: dig @${host} -p ${port} NAME.vm)`;
}

/** Whether `<name>.vm` resolves for ordinary programs: systemd-resolved routing `~vm` on the bridge link. */
async function resolverRow(i: NetworkDoctorInput): Promise<CheckRow> {
  const c = i.config;
  const resolvectl = await i.which('resolvectl');
  const active = resolvectl !== undefined && (i.resolved ? await i.resolved() : true);
  if (!resolvectl || !active)
    return {
      name: 'resolver routing',
      status: 'WARN',
      detail: 'no systemd-resolved: programs other than banger do not resolve <name>.vm',
      fix: resolverRecipe(c, false),
    };
  const res = await tryRun(i, [resolvectl, 'domain', c.bridgeName]);
  if (res.code === 0 && /(^|\s)~vm(\s|$)/m.test(res.stdout.split(':').slice(1).join(':')))
    return { name: 'resolver routing', status: 'PASS', detail: `systemd-resolved sends *.vm to ${c.bridgeName}` };
  return {
    name: 'resolver routing',
    status: 'WARN',
    detail: `systemd-resolved does not route ~vm on ${c.bridgeName}${res.code === 0 ? '' : ' (no such link yet: banger routes it when the bridge comes up)'}`,
    fix: resolverRecipe(c, true),
  };
}

async function bridgeRow(i: NetworkDoctorInput, bad: CheckStatus): Promise<CheckRow> {
  const c = i.config;
  const res = await tryRun(i, ['ip', '-j', 'addr', 'show', 'dev', c.bridgeName]);
  if (res.code !== 0)
    return {
      name: 'bridge',
      status: 'PASS',
      detail: `${c.bridgeName} not present (made when the first bridge-mode VM starts)`,
    };
  let addrs: string[] = [];
  let state = 'unknown';
  try {
    const data = JSON.parse(res.stdout) as {
      operstate?: string;
      addr_info?: { family?: string; local?: string; prefixlen?: number }[];
    }[];
    state = data[0]?.operstate ?? 'unknown';
    addrs = (data[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  } catch {
    return { name: 'bridge', status: 'WARN', detail: `cannot read the addresses of ${c.bridgeName}` };
  }
  const want = `${c.bridgeIp}/${c.cidr}`;
  return addrs.includes(want)
    ? { name: 'bridge', status: 'PASS', detail: `${c.bridgeName} ${want} (${state.toLowerCase()})` }
    : {
        name: 'bridge',
        status: bad,
        detail: `${c.bridgeName} exists without ${want} (has ${addrs.join(', ') || 'no IPv4 address'})`,
        fix: `set bridge_ip and cidr in config.toml to match it, or remove it with \`ip link del ${c.bridgeName}\` while no VM runs`,
      };
}

async function dnsRow(i: NetworkDoctorInput, bridgeMode: boolean): Promise<CheckRow> {
  const listen = i.config.dnsListen;
  const p = await i.probeDns(listen).catch((e: unknown) => ({ state: 'other' as const, detail: (e as Error).message }));
  if (p.state === 'answering')
    return { name: 'DNS listener', status: 'PASS', detail: `banger answers <name>.vm on ${listen}` };
  if (p.state === 'silent')
    return bridgeMode
      ? {
          name: 'DNS listener',
          status: 'WARN',
          detail: `nothing answers on ${listen}`,
          fix: 'start the daemon (it serves <name>.vm there in bridge mode)',
        }
      : { name: 'DNS listener', status: 'PASS', detail: `not serving (user mode; bridge mode answers on ${listen})` };
  return {
    name: 'DNS listener',
    status: bridgeMode ? 'FAIL' : 'WARN',
    detail: p.detail,
    fix: 'set dns_listen in config.toml to a free UDP address, e.g. 127.0.0.1:42069',
  };
}
