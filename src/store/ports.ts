import { alreadyExists } from '../errors.js';
import { hostKey, type PortProtocol, type Publication } from '../services/vm/portspec.js';
import type { Db } from './db.js';

interface Raw {
  vm_id: string;
  protocol: PortProtocol;
  address: string;
  host_port: number;
  guest_port: number;
}

const pub = (r: Raw): Publication => ({
  address: r.address,
  hostPort: r.host_port,
  guestPort: r.guest_port,
  protocol: r.protocol,
});

/**
 * Published ports of VMs (issue 14): kept from publish (or create) until
 * unpublish or the VM's delete (ON DELETE CASCADE), applied while the VM
 * runs. The host side is UNIQUE, so no two VMs publish one ADDR:PORT/proto.
 */
export class PortRepo {
  constructor(private readonly db: Db) {}

  list(vmId: string): Publication[] {
    const rows = this.db
      .prepare('SELECT * FROM vm_ports WHERE vm_id = ? ORDER BY protocol, address, host_port')
      .all(vmId) as Raw[];
    return rows.map(pub);
  }

  /** Which VM (name) holds the host side of `p`, if any. */
  holder(p: Pick<Publication, 'address' | 'hostPort' | 'protocol'>): string | undefined {
    const r = this.db
      .prepare(
        'SELECT vms.name AS name FROM vm_ports JOIN vms ON vms.id = vm_ports.vm_id WHERE address = ? AND host_port = ? AND protocol = ?',
      )
      .get(p.address, p.hostPort, p.protocol) as { name: string } | undefined;
    return r?.name;
  }

  /** Refuses, naming the VM, any of `pubs` whose host side another VM (or this one) already publishes. */
  checkFree(pubs: readonly Publication[]): void {
    for (const p of pubs) {
      const vm = this.holder(p);
      if (vm !== undefined)
        throw alreadyExists(
          `port ${hostKey(p)} is already published by VM "${vm}"`,
          `pick another host port, or \`banger vm unpublish ${vm} ${hostKey(p)}\` first`,
        );
    }
  }

  /** Records all of `pubs` for the VM, or none (one transaction; a taken host side is an already_exists error). */
  add(vmId: string, pubs: readonly Publication[]): void {
    const ins = this.db.prepare(
      'INSERT INTO vm_ports (vm_id, protocol, address, host_port, guest_port) VALUES (?, ?, ?, ?, ?)',
    );
    this.db
      .transaction(() => {
        this.checkFree(pubs);
        for (const p of pubs) ins.run(vmId, p.protocol, p.address, p.hostPort, p.guestPort);
      })
      .immediate();
  }

  remove(vmId: string, p: Pick<Publication, 'address' | 'hostPort' | 'protocol'>): void {
    this.db
      .prepare('DELETE FROM vm_ports WHERE vm_id = ? AND address = ? AND host_port = ? AND protocol = ?')
      .run(vmId, p.address, p.hostPort, p.protocol);
  }
}
