import { isIPv4 } from 'node:net';
import { badRequest } from '../errors.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/**
 * SET_IDENTITY (docs/agent-protocol.md): a list of records `u8 tag, u16 length, value`.
 * Version 2 added machine-id, clock, network, reseed and open-gate (issue 17: a guest restored
 * from a template takes its per-VM identity from the host, then opens the gate to sshd), and the
 * test-only rng-sample (guest assets v11).
 */

const MAX_HOSTNAME = 64;
const MAX_ENTROPY = 512;

export const IdentityTag = {
  hostname: 1,
  entropy: 2,
  machineId: 3,
  clock: 4,
  network: 5,
  reseed: 6,
  openGate: 7,
  rngSample: 8,
} as const;

export interface IdentityNetwork {
  /** IPv4 address with prefix, e.g. 10.0.2.15/24. */
  ip: string;
  gateway: string;
  /** Omitted: the guest's resolv.conf stays as it is. */
  dns?: string | undefined;
  /** The MAC the guest sets on its NIC (a restored guest still has the template's). */
  mac: string;
}

export interface Identity {
  hostname?: string;
  /** Random bytes mixed (and credited) into the guest's entropy pool. */
  entropy?: Buffer;
  /** 32 lowercase hex digits, not all zero: the guest's new /etc/machine-id. */
  machineId?: string;
  /** CLOCK_REALTIME to set, in nanoseconds since the epoch. */
  clockNs?: bigint;
  network?: IdentityNetwork;
  /** RNDRESEEDCRNG after the entropy: the CRNG forgets the state a restore cloned. */
  reseed?: boolean;
  /** Opens the template gate: host keys are made and sshd starts. */
  openGate?: boolean;
  /**
   * Test-only: the agent writes the first 32 random bytes after the entropy and reseed step to
   * /run/banger-rng-sample (hex), so a test can compare two restored guests' CRNG output.
   */
  rngSample?: boolean;
}

const HOSTNAME = /^[A-Za-z0-9.-]{1,64}$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const U64_MAX = (1n << 64n) - 1n;

function ipv4(s: string, what: string): Buffer {
  if (!isIPv4(s)) throw badRequest(`${what} ${JSON.stringify(s)} is not an IPv4 address`);
  return Buffer.from(s.split('.').map(Number));
}

function encodeNetwork(n: IdentityNetwork): Buffer {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(n.ip);
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || !(prefix >= 1 && prefix <= 32)) {
    throw badRequest(`guest address ${JSON.stringify(n.ip)} is not an IPv4 address with a /1../32 prefix`);
  }
  if (!MAC.test(n.mac)) throw badRequest(`MAC ${JSON.stringify(n.mac)} is not six lowercase hex pairs`);
  const mac = Buffer.from(n.mac.replaceAll(':', ''), 'hex');
  if (mac[0]! & 1) throw badRequest(`MAC ${n.mac} is a multicast address`);
  return Buffer.concat([
    ipv4(m[1]!, 'guest address'),
    Buffer.from([prefix]),
    ipv4(n.gateway, 'gateway'),
    mac,
    ...(n.dns === undefined ? [] : [ipv4(n.dns, 'dns server')]),
  ]);
}

const dotted = (b: Buffer): string => [...b].join('.');

function decodeNetwork(v: Buffer, r: PayloadReader): IdentityNetwork {
  if (v.length !== 15 && v.length !== 19) r.fail(`network record of ${v.length} bytes (15 or 19)`);
  const prefix = v[4]!;
  if (prefix < 1 || prefix > 32) r.fail(`network prefix ${prefix}`);
  const mac = [...v.subarray(9, 15)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (v[9]! & 1) r.fail(`multicast MAC ${mac}`);
  return {
    ip: `${dotted(v.subarray(0, 4))}/${prefix}`,
    gateway: dotted(v.subarray(5, 9)),
    ...(v.length === 19 ? { dns: dotted(v.subarray(15, 19)) } : {}),
    mac,
  };
}

export function encodeIdentity(id: Identity): Buffer {
  const w = new PayloadWriter();
  const rec = (tag: number, value: Buffer): void => void w.u8(tag).u16(value.length).bytes(value);
  if (id.hostname !== undefined) {
    if (!HOSTNAME.test(id.hostname)) {
      throw badRequest(
        `hostname ${JSON.stringify(id.hostname)} must be 1..${MAX_HOSTNAME} characters of A-Z a-z 0-9 . -`,
      );
    }
    rec(IdentityTag.hostname, Buffer.from(id.hostname, 'latin1'));
  }
  if (id.entropy !== undefined) {
    if (id.entropy.length < 1 || id.entropy.length > MAX_ENTROPY) {
      throw badRequest(`entropy of ${id.entropy.length} bytes is not within 1..${MAX_ENTROPY}`);
    }
    rec(IdentityTag.entropy, id.entropy);
  }
  if (id.machineId !== undefined) {
    if (!MACHINE_ID.test(id.machineId) || /^0+$/.test(id.machineId)) {
      throw badRequest(`machine-id ${JSON.stringify(id.machineId)} is not 32 lowercase hex digits (not all zero)`);
    }
    rec(IdentityTag.machineId, Buffer.from(id.machineId, 'hex'));
  }
  if (id.clockNs !== undefined) {
    if (id.clockNs <= 0n || id.clockNs > U64_MAX) throw badRequest(`clock ${id.clockNs} ns is not a positive u64`);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(id.clockNs);
    rec(IdentityTag.clock, b);
  }
  if (id.network !== undefined) rec(IdentityTag.network, encodeNetwork(id.network));
  if (id.reseed === true) rec(IdentityTag.reseed, Buffer.alloc(0));
  if (id.openGate === true) rec(IdentityTag.openGate, Buffer.alloc(0));
  if (id.rngSample === true) rec(IdentityTag.rngSample, Buffer.alloc(0));
  return w.finish();
}

function flag(v: Buffer, name: string, r: PayloadReader): true {
  if (v.length !== 0) r.fail(`${name} record of ${v.length} bytes (it has no value)`);
  return true;
}

export function decodeIdentity(p: Buffer): Identity {
  const r = new PayloadReader(p, 'SET_IDENTITY');
  const id: Identity = {};
  while (r.left) {
    const tag = r.u8('tag');
    const value = r.bytes(r.u16('length'), 'value');
    if (tag === IdentityTag.hostname) {
      const h = value.toString('latin1');
      if (!HOSTNAME.test(h)) r.fail(`hostname ${JSON.stringify(h)}`);
      id.hostname = h;
    } else if (tag === IdentityTag.entropy) {
      if (value.length < 1 || value.length > MAX_ENTROPY) r.fail(`entropy of ${value.length} bytes`);
      id.entropy = Buffer.from(value);
    } else if (tag === IdentityTag.machineId) {
      if (value.length !== 16 || value.every((b) => b === 0)) r.fail(`machine-id of ${value.length} bytes`);
      id.machineId = value.toString('hex');
    } else if (tag === IdentityTag.clock) {
      if (value.length !== 8 || value.readBigUInt64BE() === 0n) r.fail(`clock record of ${value.length} bytes`);
      id.clockNs = value.readBigUInt64BE();
    } else if (tag === IdentityTag.network) {
      id.network = decodeNetwork(value, r);
    } else if (tag === IdentityTag.reseed) {
      id.reseed = flag(value, 'reseed', r);
    } else if (tag === IdentityTag.openGate) {
      id.openGate = flag(value, 'open-gate', r);
    } else if (tag === IdentityTag.rngSample) {
      id.rngSample = flag(value, 'rng-sample', r);
    } else {
      r.fail(`record tag ${tag} is unknown`);
    }
  }
  return id;
}
