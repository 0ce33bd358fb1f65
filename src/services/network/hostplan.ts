import { isBridgeName } from '../../config/schema.js';
import { badRequest } from '../../errors.js';
import { resolverSteps } from './resolver.js';
import { isGuestAddress, subnet } from './subnet.js';

/*
 * Bridge-mode host networking as a plan (SPEC §7.3), in the shape of the
 * root-disk plans (services/vm/rootdisk.ts): pure builders return the host
 * steps with their undos; hostexec.ts runs them through the runner. Every
 * link and rule banger makes carries its owner tag (`banger:<vm id>`, as the
 * link's alias and the rule's comment) so the sweep can tell banger's from
 * anybody else's.
 */

/** Prefix of every tap banger makes; the rest is the start of the VM id (Linux allows 15 characters). */
export const TAP_PREFIX = 'tap-';
/** The owner tag's prefix: `banger:<vm id>` on taps (ifalias) and NAT rules (comment). */
export const OWNER_PREFIX = 'banger:';
const IFNAMSIZ = 15;

export const tapName = (vmId: string): string => `${TAP_PREFIX}${vmId.slice(0, IFNAMSIZ - TAP_PREFIX.length)}`;
export const ownerTag = (vmId: string): string => `${OWNER_PREFIX}${vmId}`;

/** One host step: `check` (if any) exits 0 when the step's effect is already there, and the step is skipped. */
export interface NetStep {
  what: string;
  argv: string[];
  undo?: string[];
  check?: string[];
  /** Shared by every bridge-mode VM (the bridge, forwarding): undone only by a failed run that made it, or the sweep. */
  shared?: boolean;
  /** A failure is reported (AppliedNet.skipped) and the plan goes on: the VM runs without it (resolver routing). */
  bestEffort?: boolean;
}

export interface HostNetInput {
  vmId: string;
  bridgeName: string;
  bridgeIp: string;
  cidr: number;
  guestIp: string;
  nat: boolean;
  /** uid that may open the tap (the VMM's user); omitted: root only. */
  tapOwner?: number;
  /** With systemd-resolved: route `~vm` on the bridge to banger's name server at this address (resolver.ts). */
  resolverDns?: string;
}

export interface HostNetPlan {
  vmId: string;
  bridge: string;
  tap: string;
  guestIp: string;
  steps: NetStep[];
}

/** The MASQUERADE rule of one guest: `-s IP/32 ! -o BRIDGE` works with or without a default route. */
export function natRule(op: '-A' | '-C' | '-D', i: Pick<HostNetInput, 'vmId' | 'bridgeName' | 'guestIp'>): string[] {
  return [
    'iptables',
    '-w',
    '5',
    '-t',
    'nat',
    op,
    'POSTROUTING',
    '-s',
    `${i.guestIp}/32`,
    '!',
    '-o',
    i.bridgeName,
    '-m',
    'comment',
    '--comment',
    ownerTag(i.vmId),
    '-j',
    'MASQUERADE',
  ];
}

/** The bridge, created if missing, with its address, up. Shared by all bridge-mode VMs. */
export function bridgeSteps(i: Pick<HostNetInput, 'bridgeName' | 'bridgeIp' | 'cidr'>): NetStep[] {
  const br = i.bridgeName;
  return [
    {
      what: `bridge ${br}`,
      check: ['ip', 'link', 'show', 'dev', br],
      argv: ['ip', 'link', 'add', 'name', br, 'type', 'bridge'],
      undo: ['ip', 'link', 'del', 'dev', br],
      shared: true,
    },
    {
      what: `bridge address ${i.bridgeIp}/${i.cidr}`,
      argv: ['ip', 'addr', 'replace', `${i.bridgeIp}/${i.cidr}`, 'dev', br],
      shared: true,
    },
    { what: `bridge ${br} up`, argv: ['ip', 'link', 'set', 'dev', br, 'up'], shared: true },
  ];
}

/** Refuses input that would make a wrong or unowned host change, naming the value. */
function validate(i: HostNetInput): void {
  if (!/^[0-9a-f]{12,64}$/.test(i.vmId))
    throw badRequest(`not a VM id for a tap: ${JSON.stringify(i.vmId)} (expected 12 to 64 lower-case hex digits)`);
  if (!isBridgeName(i.bridgeName))
    throw badRequest(`invalid bridge_name ${JSON.stringify(i.bridgeName)}: expected "br-fc" or "br-fc-<suffix>"`);
  const s = subnet(i.bridgeIp, i.cidr);
  if (!isGuestAddress(s, i.guestIp))
    throw badRequest(
      `guest IP ${i.guestIp} is not a guest address of ${s.label}`,
      'this is a bug: allocate guest IPs through the store (IpRepo.allocate)',
    );
}

/** Everything one VM needs on the host: the bridge, its tap on it, and with `nat` forwarding plus its one rule. */
export function hostNetPlan(i: HostNetInput): HostNetPlan {
  validate(i);
  const tap = tapName(i.vmId);
  const steps: NetStep[] = [
    ...bridgeSteps(i),
    ...(i.resolverDns === undefined ? [] : resolverSteps(i.bridgeName, i.resolverDns)),
    {
      what: `tap ${tap}`,
      check: ['ip', 'link', 'show', 'dev', tap],
      argv: [
        'ip',
        'tuntap',
        'add',
        'dev',
        tap,
        'mode',
        'tap',
        ...(i.tapOwner === undefined ? [] : ['user', String(i.tapOwner)]),
      ],
      undo: ['ip', 'link', 'del', 'dev', tap],
    },
    { what: `tap ${tap} owner tag`, argv: ['ip', 'link', 'set', 'dev', tap, 'alias', ownerTag(i.vmId)] },
    { what: `tap ${tap} on ${i.bridgeName}`, argv: ['ip', 'link', 'set', 'dev', tap, 'master', i.bridgeName] },
    { what: `tap ${tap} up`, argv: ['ip', 'link', 'set', 'dev', tap, 'up'] },
  ];
  if (i.nat) {
    steps.push(
      { what: 'IPv4 forwarding', argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], shared: true },
      {
        what: `NAT for ${i.guestIp}`,
        check: natRule('-C', i),
        argv: natRule('-A', i),
        undo: natRule('-D', i),
      },
    );
  }
  return { vmId: i.vmId, bridge: i.bridgeName, tap, guestIp: i.guestIp, steps };
}

/** Whether argv changes the host (needs root); reading links does not. */
export function needsPrivilege(argv: readonly string[]): boolean {
  const [prog, ...rest] = argv;
  if (prog === 'ip') {
    const args = rest.filter((a) => !a.startsWith('-'));
    return !(args[0] === 'link' && args[1] === 'show');
  }
  return true;
}

/**
 * The argv to run: as root as is; otherwise privileged steps through
 * `sudo -n` (never a password prompt: no sudo rule is a clear failure).
 */
export function withPrivilege(argv: readonly string[], euid: number): string[] {
  return euid === 0 || !needsPrivilege(argv) ? [...argv] : ['sudo', '-n', ...argv];
}
