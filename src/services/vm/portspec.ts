import { isIPv4 } from 'node:net';
import { badRequest } from '../../errors.js';

/*
 * Port publishing specs (SPEC §7.3, issue 14): `[ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]`,
 * ADDR an IPv4 address, 127.0.0.1 unless given, the protocol tcp unless given.
 * Pure: the VM service and the CLI share these.
 */

export type PortProtocol = 'tcp' | 'udp';

/** One published port: the host's ADDR:HOST_PORT forwards to the guest's GUEST_PORT. */
export interface Publication {
  address: string;
  hostPort: number;
  guestPort: number;
  protocol: PortProtocol;
}

/** What `vm unpublish` names: the host side (the guest port, when given, must match). */
export interface PublicationRef {
  address: string;
  hostPort: number;
  guestPort?: number;
  protocol: PortProtocol;
}

export const DEFAULT_PUBLISH_ADDRESS = '127.0.0.1';

const FORMAT_HINT = 'expected [ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp], e.g. 127.0.0.1:8080:80 or 5353:53/udp';

function port(spec: string, what: string, v: string): number {
  const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535))
    throw badRequest(
      `invalid port spec ${JSON.stringify(spec)}: ${what} ${JSON.stringify(v)} is not a port 1-65535`,
      FORMAT_HINT,
    );
  return n;
}

function address(spec: string, v: string): string {
  if (!isIPv4(v))
    throw badRequest(
      `invalid port spec ${JSON.stringify(spec)}: ${JSON.stringify(v)} is not an IPv4 address`,
      FORMAT_HINT,
    );
  return v;
}

function split(spec: string): { parts: string[]; protocol: PortProtocol } {
  const slash = spec.indexOf('/');
  const body = slash < 0 ? spec : spec.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : spec.slice(slash + 1);
  if (proto !== 'tcp' && proto !== 'udp')
    throw badRequest(
      `invalid port spec ${JSON.stringify(spec)}: protocol ${JSON.stringify(proto)} is not tcp or udp`,
      FORMAT_HINT,
    );
  return { parts: body.split(':'), protocol: proto };
}

/** Parses `[ADDR:]HOST_PORT:GUEST_PORT[/tcp|/udp]`; a bad spec is a bad_request naming it and the bad value. */
export function parsePublication(spec: string): Publication {
  const { parts, protocol } = split(spec);
  if (parts.length === 2) {
    const [h, g] = parts as [string, string];
    return {
      address: DEFAULT_PUBLISH_ADDRESS,
      hostPort: port(spec, 'host port', h),
      guestPort: port(spec, 'guest port', g),
      protocol,
    };
  }
  if (parts.length === 3) {
    const [a, h, g] = parts as [string, string, string];
    return {
      address: address(spec, a),
      hostPort: port(spec, 'host port', h),
      guestPort: port(spec, 'guest port', g),
      protocol,
    };
  }
  throw badRequest(`invalid port spec ${JSON.stringify(spec)}`, FORMAT_HINT);
}

/**
 * Parses what `vm unpublish` takes: a publish spec, or its host side alone
 * (`[ADDR:]HOST_PORT[/tcp|/udp]`); two parts are ADDR:HOST_PORT when the
 * first is an address, HOST_PORT:GUEST_PORT otherwise.
 */
export function parsePublicationRef(spec: string): PublicationRef {
  const { parts, protocol } = split(spec);
  if (parts.length === 1)
    return { address: DEFAULT_PUBLISH_ADDRESS, hostPort: port(spec, 'host port', parts[0] as string), protocol };
  if (parts.length === 2 && (parts[0] as string).includes('.'))
    return {
      address: address(spec, parts[0] as string),
      hostPort: port(spec, 'host port', parts[1] as string),
      protocol,
    };
  return parsePublication(spec);
}

/** Parses every spec; duplicates of one host ADDR:PORT/proto are refused too. */
export function parsePublications(specs: readonly string[]): Publication[] {
  const out = specs.map(parsePublication);
  const seen = new Set<string>();
  for (const p of out) {
    const k = hostKey(p);
    if (seen.has(k)) throw badRequest(`port ${k} is published twice`, 'give each host ADDR:PORT/protocol once');
    seen.add(k);
  }
  return out;
}

/** The host side, `ADDR:PORT/proto`: what no two publications share. */
export function hostKey(p: Pick<Publication, 'address' | 'hostPort' | 'protocol'>): string {
  return `${p.address}:${p.hostPort}/${p.protocol}`;
}

/** The spec back, always in full: `127.0.0.1:8080:80/tcp`. */
export function formatPublication(p: Publication): string {
  return `${p.address}:${p.hostPort}:${p.guestPort}/${p.protocol}`;
}

/** Whether `ref` names `p`. */
export function matchesRef(p: Publication, ref: PublicationRef): boolean {
  return hostKey(p) === hostKey(ref) && (ref.guestPort === undefined || ref.guestPort === p.guestPort);
}
