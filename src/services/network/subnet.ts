import { isIPv4 } from 'node:net';
import { badRequest } from '../../errors.js';

/* IPv4 arithmetic for the bridge subnet (`bridge_ip`/`cidr`): pure. */

export function ipToInt(ip: string): number {
  if (!isIPv4(ip)) throw badRequest(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export interface Subnet {
  /** "172.16.0.1/24": how errors name it. */
  label: string;
  network: number;
  broadcast: number;
  bridge: number;
}

export function subnet(bridgeIp: string, cidr: number): Subnet {
  if (!Number.isInteger(cidr) || cidr < 1 || cidr > 30)
    throw badRequest(`invalid cidr ${cidr}: expected a prefix length from 1 to 30`);
  const bridge = ipToInt(bridgeIp);
  const size = 2 ** (32 - cidr);
  const network = Math.floor(bridge / size) * size;
  const broadcast = network + size - 1;
  const label = `${bridgeIp}/${cidr}`;
  if (bridge === network || bridge === broadcast)
    throw badRequest(`bridge_ip ${bridgeIp} is the network or broadcast address of ${label}`, 'pick a host address');
  return { label, network, broadcast, bridge };
}

/** Whether `ip` is a guest address of the subnet: inside it, not its network, broadcast or bridge address. */
export function isGuestAddress(s: Subnet, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  const n = ipToInt(ip);
  return n > s.network && n < s.broadcast && n !== s.bridge;
}

/** How many guest addresses the subnet has. */
export function guestCapacity(s: Subnet): number {
  return s.broadcast - s.network - 2;
}

/** The lowest guest address of `s` not in `used` (deterministic), or undefined when all are taken. */
export function lowestFree(s: Subnet, used: ReadonlySet<string>): string | undefined {
  // Bounded: at most |used| + 2 candidates are looked at before a free one (or the end of the range).
  for (let n = s.network + 1; n < s.broadcast; n++) {
    if (n === s.bridge) continue;
    const ip = intToIp(n);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}
