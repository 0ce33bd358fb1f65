import { readFile } from 'node:fs/promises';
import { badRequest, precondition } from '../../errors.js';
import type { ProxySettings } from '../../net/proxy.js';
import { hostRouteTables } from '../../system/paths.js';

/*
 * `image pull --install-sshd`: upstream banger's first-boot install of
 * openssh-server + systemd-sysv with the image's package manager. It needs
 * outbound network for the guest, so it is refused up front when the host has
 * no way out (no default route and no proxy): a cheap check of the host's own
 * routing tables that contacts nothing.
 */

export type PackageManager = 'apt' | 'apk' | 'dnf' | 'pacman' | 'zypper';

export interface SshdInstall {
  manager: PackageManager;
  /** One shell command line, run as root in the guest. */
  command: string;
}

/** os-release KEY=value lines (values unquoted); comments and junk ignored. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    const v = m[2].trim();
    out[m[1]] = /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v;
  }
  return out;
}

const COMMANDS: readonly [readonly string[], SshdInstall][] = [
  [
    ['debian', 'ubuntu'],
    {
      manager: 'apt',
      command:
        'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server systemd-sysv',
    },
  ],
  [['alpine'], { manager: 'apk', command: 'apk add --no-cache openssh-server' }],
  [['fedora', 'rhel', 'centos'], { manager: 'dnf', command: 'dnf install -y openssh-server systemd' }],
  [['arch'], { manager: 'pacman', command: 'pacman -Sy --noconfirm openssh systemd-sysvcompat' }],
  [
    ['suse', 'opensuse'],
    { manager: 'zypper', command: 'zypper --non-interactive install openssh-server systemd-sysvinit' },
  ],
];

/**
 * The install command for an image's /etc/os-release: its ID first, then each
 * ID_LIKE in order. An unknown distribution is a bad_request naming its ID.
 */
export function sshdInstallCommand(osRelease: string): SshdInstall {
  const f = parseOsRelease(osRelease);
  const ids = [f.ID ?? '', ...(f.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase()).filter(Boolean);
  for (const id of ids) {
    const hit = COMMANDS.find(([names]) => names.includes(id) || (id.startsWith('opensuse') && names.includes('suse')));
    if (hit) return hit[1];
  }
  throw badRequest(
    `--install-sshd does not know the package manager of distribution ${JSON.stringify(f.ID ?? 'unknown')}${f.ID_LIKE ? ` (like ${f.ID_LIKE})` : ''}`,
    'it knows apt (debian, ubuntu), apk (alpine), dnf (fedora, rhel, centos), pacman (arch) and zypper (suse); pull without --install-sshd: banger reaches the guest through its agent',
  );
}

const RTF_UP = 0x1;
const RTF_REJECT = 0x200;

/**
 * The default routes in the host's routing tables (/proc/net/route and
 * /proc/net/ipv6_route), as "iface" names; the kernel's IPv6 reject route on
 * lo does not count.
 */
export function defaultRoutes(ipv4: string, ipv6: string): string[] {
  const out: string[] = [];
  for (const line of ipv4.split('\n').slice(1)) {
    const [iface, dest, , flags, , , , mask] = line.trim().split(/\s+/);
    if (!iface || dest !== '00000000' || mask !== '00000000') continue;
    const f = parseInt(flags ?? '0', 16);
    if (f & RTF_UP && !(f & RTF_REJECT)) out.push(iface);
  }
  for (const line of ipv6.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const [dest, plen] = cols;
    const flags = parseInt(cols[8] ?? '0', 16);
    const iface = cols[9] as string;
    if (/^0{32}$/.test(dest ?? '') && plen === '00' && iface !== 'lo' && flags & RTF_UP && !(flags & RTF_REJECT))
      out.push(iface);
  }
  return out;
}

export interface EgressDeps {
  proxy: ProxySettings | undefined;
  /** The routing tables' text; default: the host's (paths.ts hostRouteTables). */
  routeTables?: () => Promise<{ ipv4: string; ipv6: string }>;
}

async function hostRoutes(): Promise<{ ipv4: string; ipv6: string }> {
  const read = (p: string): Promise<string> => readFile(p, 'utf8').catch(() => '');
  return { ipv4: await read(hostRouteTables.ipv4), ipv6: await read(hostRouteTables.ipv6) };
}

const NO_SSHD_HINT = 'pull without --install-sshd: images without sshd work through banger’s agent (vm run, vm ssh)';

/**
 * `image pull --install-sshd`, checked before anything is downloaded: refused
 * when the host has no default route and no proxy (the guest's package manager
 * could reach no mirror). Returns how the host gets out.
 */
export async function checkEgress(d: EgressDeps): Promise<string> {
  const tables = await (d.routeTables ?? hostRoutes)();
  const routes = defaultRoutes(tables.ipv4, tables.ipv6);
  const proxied = d.proxy !== undefined && (d.proxy.http !== undefined || d.proxy.https !== undefined);
  if (routes.length === 0 && !proxied)
    throw precondition(
      '--install-sshd needs outbound network for the guest’s package manager, and this host is offline (no default route in /proc/net/route or /proc/net/ipv6_route, no HTTP(S)_PROXY)',
      NO_SSHD_HINT,
    );
  return routes.length > 0 ? `a default route on ${[...new Set(routes)].join(', ')}` : 'a proxy';
}

/**
 * ImageService.pull with install_sshd: the daemon routes such pulls to
 * pullWithSshd (daemon/install-sshd.ts), which needs the VM service; a caller
 * without it gets the egress check and then this refusal.
 */
export async function checkInstallSshd(d: EgressDeps): Promise<never> {
  const via = await checkEgress(d);
  throw precondition(
    `--install-sshd is not available here (the one-off install in a throwaway VM needs the daemon's VM service; the host has a way out via ${via})`,
    NO_SSHD_HINT,
  );
}
