import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { AppError, badRequest } from '../../errors.js';

/*
 * The `<name>.vm` name server (SPEC §7.3): authoritative for the `vm` zone
 * only, A records from the daemon's VMs, NXDOMAIN for unknown names, REFUSED
 * for anything outside the zone, no recursion ever. Every datagram is
 * untrusted: an oversized or malformed one is dropped without an answer, and
 * nothing it carries can make the server throw.
 */

/** Datagrams above this are dropped unread (a plain query is well under 512 bytes; EDNS clients stay far below). */
export const MAX_QUERY_BYTES = 1232;
/** TTL of every answer: short, records change as VMs start and stop. */
export const RECORD_TTL_SECONDS = 5;

export const ZONE = 'vm';

/** DNS header rcodes (RFC 1035 §4.1.1). */
const RCODE = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const OPCODE_QUERY = 0;

/** A VM name usable as one DNS label: lower-case letters, digits, hyphens, not at the ends, at most 63. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function recordName(name: string): string {
  const n = name.toLowerCase();
  if (!LABEL.test(n)) throw badRequest(`not a DNS name for a VM: ${JSON.stringify(name)}`);
  return n;
}

/** The records the server answers from: VM name (without `.vm`) → IPv4 address. */
export class VmRecords {
  private readonly map = new Map<string, string>();

  set(name: string, ip: string): void {
    if (!isIPv4(ip)) throw badRequest(`not an IPv4 address for ${name}.vm: ${JSON.stringify(ip)}`);
    this.map.set(recordName(name), ip);
  }

  remove(name: string): void {
    this.map.delete(name.toLowerCase());
  }

  /** Swaps the whole set at once (startup rebuild): a bad entry leaves the old set untouched. */
  replaceAll(records: Iterable<readonly [string, string]>): void {
    const next = new VmRecords();
    for (const [name, ip] of records) next.set(name, ip);
    this.map.clear();
    for (const [name, ip] of next.map) this.map.set(name, ip);
  }

  lookup(name: string): string | undefined {
    return this.map.get(name);
  }

  entries(): [string, string][] {
    return [...this.map.entries()].sort(([a], [b]) => a.localeCompare(b));
  }
}

/**
 * The answer to one datagram, or undefined to drop it (oversized, not a
 * DNS message, a response, or nothing to echo back). Pure: the UDP server
 * is a thin loop around it.
 */
export function answer(msg: Buffer, records: VmRecords): Buffer | undefined {
  if (msg.length < 12 || msg.length > MAX_QUERY_BYTES) return undefined;
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    // Not decodable: answer FORMERR only if the header itself is sane, else drop. Dropping is simplest and safe.
    return undefined;
  }
  const flags = q.flags ?? 0;
  if (q.flag_qr) return undefined; // never answer a response (no reflection loops)
  const rd = flags & dnsPacket.RECURSION_DESIRED;
  const reply = (rcode: number, extra: Partial<dnsPacket.Packet> = {}, aa = false): Buffer =>
    dnsPacket.encode({
      type: 'response',
      id: q.id ?? 0,
      flags: (aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rd | rcode,
      questions: q.questions ?? [],
      ...extra,
    });
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== OPCODE_QUERY) return reply(RCODE.NOTIMP);
  const questions = q.questions ?? [];
  if (questions.length !== 1) return reply(RCODE.FORMERR);
  const question = questions[0] as dnsPacket.Question;
  if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') return reply(RCODE.REFUSED);
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  if (labels[labels.length - 1] !== ZONE) return reply(RCODE.REFUSED);
  // Inside the zone: `<label>.vm` may exist; the apex and deeper names never hold an A record.
  const ip = labels.length === 2 ? records.lookup(labels[0] as string) : undefined;
  if (ip === undefined) {
    // The apex exists (it is the zone); everything else unknown is NXDOMAIN.
    return reply(labels.length === 1 ? RCODE.NOERROR : RCODE.NXDOMAIN, {}, true);
  }
  if (question.type !== 'A' && (question.type as string) !== 'ANY') return reply(RCODE.NOERROR, {}, true); // NODATA
  return reply(
    RCODE.NOERROR,
    { answers: [{ type: 'A', class: 'IN', name: question.name, ttl: RECORD_TTL_SECONDS, data: ip }] },
    true,
  );
}

/** `dns_listen` ("127.0.0.1:42069") as host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1] as string) || !(port >= 1 && port <= 65535))
    throw badRequest(`invalid dns_listen ${JSON.stringify(listen)}: expected IPV4:PORT, e.g. 127.0.0.1:42069`);
  return { host: m[1] as string, port };
}

/** The UDP server around answer(): start() binds `dns_listen`, stop() closes it. */
export class VmDnsServer {
  readonly records = new VmRecords();
  private socket: Socket | undefined;

  private readonly listen: string;

  /** `dns_listen` text, or host and port (port 0: the kernel picks one; tests). */
  constructor(private readonly where: string | { host: string; port: number }) {
    this.listen = typeof where === 'string' ? where : `${where.host}:${where.port}`;
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.socket) throw new Error('VmDnsServer already started');
    const { host, port } = typeof this.where === 'string' ? parseListen(this.where) : this.where;
    const sock = createSocket({ type: 'udp4' });
    sock.on('message', (msg: Buffer, from: RemoteInfo) => {
      let out: Buffer | undefined;
      try {
        out = answer(msg, this.records);
      } catch {
        out = undefined; // a bug in a corner of the codec must not take the daemon down
      }
      if (out) sock.send(out, from.port, from.address, () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        sock.close();
        reject(
          new AppError('operation_failed', `cannot listen for DNS on ${this.listen}: ${e.code ?? e.message}`, {
            hint:
              e.code === 'EADDRINUSE'
                ? `another program uses UDP ${this.listen}; set dns_listen in config.toml to a free address`
                : 'set dns_listen in config.toml to a local IPv4 address and port',
            cause: e,
          }),
        );
      };
      sock.once('error', onError);
      sock.bind({ address: host, port, exclusive: true }, () => {
        sock.off('error', onError);
        resolve();
      });
    });
    // After bind, a socket error (rare: e.g. ICMP on send) is logged by nobody and must not crash the process.
    sock.on('error', () => undefined);
    this.socket = sock;
    const addr = sock.address();
    return { host: addr.address, port: addr.port };
  }

  async stop(): Promise<void> {
    const sock = this.socket;
    this.socket = undefined;
    if (sock) await new Promise<void>((resolve) => sock.close(() => resolve()));
  }
}

export type DnsProbe = { state: 'answering' } | { state: 'silent' } | { state: 'other'; detail: string };

/**
 * Asks `dns_listen` for a name that never exists (`banger-doctor-probe.vm`):
 * banger's server answers NXDOMAIN, authoritatively; silence means nothing
 * listens; any other answer means another server holds the port.
 */
export function probeDns(listen: string, timeoutMs = 1000): Promise<DnsProbe> {
  const { host, port } = parseListen(listen);
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const id = Math.floor(Math.random() * 65536);
    const finish = (p: DnsProbe): void => {
      clearTimeout(timer);
      sock.close();
      resolve(p);
    };
    const timer = setTimeout(() => finish({ state: 'silent' }), timeoutMs);
    sock.on('error', (e) => finish({ state: 'other', detail: e.message }));
    sock.on('message', (msg) => {
      try {
        const d = dnsPacket.decode(msg);
        if (d.id !== id) return;
        const rcode = (d.flags ?? 0) & 0xf;
        finish(
          rcode === RCODE.NXDOMAIN && d.flag_aa
            ? { state: 'answering' }
            : { state: 'other', detail: `an unexpected DNS answer (rcode ${rcode}): another server uses ${listen}?` },
        );
      } catch {
        finish({ state: 'other', detail: `something that is not a DNS server answers on ${listen}` });
      }
    });
    sock.send(
      dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name: `banger-doctor-probe.${ZONE}` }] }),
      port,
      host,
    );
  });
}
