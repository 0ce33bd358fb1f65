import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createConnection, createServer, type Server } from 'node:net';
import { precondition } from '../../errors.js';
import { hostKey, type Publication } from '../vm/portspec.js';

/*
 * Published ports of bridge-mode VMs (issue 14): the daemon listens on
 * ADDR:HOST_PORT and relays to GUEST_IP:GUEST_PORT. Chosen over DNAT rules:
 * it works for 127.0.0.1 without route_localnet and a second SNAT rule for
 * loopback sources, and it leaves nothing on the host to sweep (a proxy dies
 * with the daemon; startup opens them again for running VMs).
 */

/** Most TCP connections one published port relays at once. */
const MAX_TCP_CONNECTIONS = 256;
/** Most UDP peers one published port tracks; a peer idle this long is forgotten. */
const MAX_UDP_PEERS = 256;
const UDP_IDLE_MS = 60_000;

interface Open {
  close(): Promise<void>;
}

function bindError(p: Publication, e: NodeJS.ErrnoException): Error {
  return precondition(
    `cannot publish ${hostKey(p)}: ${e.code === 'EADDRINUSE' ? 'the port is taken on the host' : (e.code ?? e.message)}`,
    e.code === 'EADDRINUSE'
      ? `pick another host port, or stop what listens on ${p.address}:${p.hostPort}`
      : `is ${p.address} an address of this host?`,
  );
}

function tcpRelay(p: Publication, guestIp: string): Promise<Open> {
  // Half-open on both legs: a client's FIN reaches the guest, and the guest's answer still comes back.
  const srv: Server = createServer({ allowHalfOpen: true }, (client) => {
    const up = createConnection({ host: guestIp, port: p.guestPort, allowHalfOpen: true });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    client.pipe(up).pipe(client);
  });
  srv.maxConnections = MAX_TCP_CONNECTIONS;
  return new Promise((resolve, reject) => {
    srv.once('error', (e: NodeJS.ErrnoException) => reject(bindError(p, e)));
    srv.listen({ host: p.address, port: p.hostPort, exclusive: true }, () =>
      resolve({ close: () => new Promise<void>((r) => srv.close(() => r())) }),
    );
  });
}

function udpRelay(p: Publication, guestIp: string): Promise<Open> {
  const sock = createSocket({ type: 'udp4' });
  const peers = new Map<string, { up: UdpSocket; timer: NodeJS.Timeout }>();
  const forget = (key: string): void => {
    const peer = peers.get(key);
    if (!peer) return;
    peers.delete(key);
    clearTimeout(peer.timer);
    peer.up.close();
  };
  sock.on('message', (msg: Buffer, from: RemoteInfo) => {
    const key = `${from.address}:${from.port}`;
    let peer = peers.get(key);
    if (!peer) {
      if (peers.size >= MAX_UDP_PEERS) return;
      const up = createSocket({ type: 'udp4' });
      up.on('message', (reply: Buffer) => sock.send(reply, from.port, from.address));
      up.on('error', () => forget(key));
      up.connect(p.guestPort, guestIp);
      peer = { up, timer: setTimeout(() => forget(key), UDP_IDLE_MS) };
      peers.set(key, peer);
      const fresh = peer;
      up.once('connect', () => fresh.up.send(msg));
      return;
    }
    peer.timer.refresh();
    try {
      peer.up.send(msg);
    } catch {
      // Still connecting: the datagram is dropped, as the network may drop any.
    }
  });
  return new Promise((resolve, reject) => {
    sock.once('error', (e: NodeJS.ErrnoException) => {
      sock.close();
      reject(bindError(p, e));
    });
    sock.bind({ address: p.address, port: p.hostPort, exclusive: true }, () => {
      sock.removeAllListeners('error');
      sock.on('error', () => undefined);
      resolve({
        close: () =>
          new Promise<void>((r) => {
            for (const k of [...peers.keys()]) forget(k);
            sock.close(() => r());
          }),
      });
    });
  });
}

/** The relays of every bridge-mode VM's published ports, by VM id and host side. */
export class PortProxies {
  private readonly open = new Map<string, Map<string, Open>>();

  /** Opens relays for all of `pubs` to guestIp, or none (a failure closes what this call opened and rethrows). */
  async add(vmId: string, guestIp: string, pubs: readonly Publication[]): Promise<void> {
    const mine = this.open.get(vmId) ?? new Map<string, Open>();
    this.open.set(vmId, mine);
    const made: string[] = [];
    try {
      for (const p of pubs) {
        const k = hostKey(p);
        if (mine.has(k)) continue;
        mine.set(k, await (p.protocol === 'tcp' ? tcpRelay(p, guestIp) : udpRelay(p, guestIp)));
        made.push(k);
      }
    } catch (e) {
      for (const k of made) await this.closeOne(vmId, k);
      throw e;
    }
  }

  /** Whether the VM's relay of `p` is open. */
  has(vmId: string, p: Pick<Publication, 'address' | 'hostPort' | 'protocol'>): boolean {
    return this.open.get(vmId)?.has(hostKey(p)) ?? false;
  }

  async remove(vmId: string, p: Pick<Publication, 'address' | 'hostPort' | 'protocol'>): Promise<void> {
    await this.closeOne(vmId, hostKey(p));
  }

  /** Closes every relay of the VM (stop, delete). */
  async closeVm(vmId: string): Promise<void> {
    for (const k of [...(this.open.get(vmId)?.keys() ?? [])]) await this.closeOne(vmId, k);
    this.open.delete(vmId);
  }

  private async closeOne(vmId: string, k: string): Promise<void> {
    const mine = this.open.get(vmId);
    const o = mine?.get(k);
    if (!mine || !o) return;
    mine.delete(k);
    await o.close();
  }
}
