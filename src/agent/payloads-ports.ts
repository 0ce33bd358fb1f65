import { isIPv4, isIPv6 } from 'node:net';
import { badRequest } from '../errors.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/** PORTS_REPLY: the guest's listening sockets (docs/agent-protocol.md). */

const PORT_ENTRY = 24;

// ---- PORTS ----------------------------------------------------------------

export interface ListeningPort {
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  address: string;
  port: number;
  uid: number;
}

export interface PortsReply {
  truncated: boolean;
  ports: ListeningPort[];
}

function formatIPv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function parseIPv6(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function encodePortsReply(reply: PortsReply): Buffer {
  const w = new PayloadWriter().u8(reply.truncated ? 1 : 0).u32(reply.ports.length);
  for (const p of reply.ports) {
    const addr = Buffer.alloc(16);
    if (p.family === 4 && isIPv4(p.address)) Buffer.from(p.address.split('.').map(Number)).copy(addr);
    else if (p.family === 6 && isIPv6(p.address)) parseIPv6(p.address).copy(addr);
    else throw badRequest(`address ${p.address} is not IPv${p.family}`);
    w.u8(p.protocol === 'tcp' ? 6 : 17)
      .u8(p.family)
      .u16(p.port)
      .bytes(addr)
      .u32(p.uid);
  }
  return w.finish();
}

export function decodePortsReply(p: Buffer): PortsReply {
  const r = new PayloadReader(p, 'PORTS_REPLY');
  const truncated = r.u8('truncated');
  if (truncated > 1) r.fail(`truncated flag ${truncated}`);
  const count = r.u32('count');
  if (count * PORT_ENTRY !== r.left) r.fail(`${count} entries do not fill ${r.left} bytes`);
  const ports: ListeningPort[] = [];
  for (let i = 0; i < count; i++) {
    const proto = r.u8('protocol');
    const family = r.u8('family');
    const port = r.u16('port');
    const addr = r.bytes(16, 'address');
    const uid = r.u32('uid');
    if (proto !== 6 && proto !== 17) r.fail(`protocol ${proto} of entry ${i}`);
    if (family !== 4 && family !== 6) r.fail(`family ${family} of entry ${i}`);
    const address = family === 4 ? Array.from(addr.subarray(0, 4)).join('.') : formatIPv6(addr);
    ports.push({ protocol: proto === 6 ? 'tcp' : 'udp', family: family === 4 ? 4 : 6, address, port, uid });
  }
  return { truncated: truncated === 1, ports };
}
