import { AppError } from '../errors.js';
import { isGuestAddress, lowestFree, guestCapacity, subnet } from '../services/network/subnet.js';
import type { Db } from './db.js';

/**
 * Guest IPs of bridge-mode VMs (SPEC §7.3): one row per VM, the address
 * UNIQUE, so no two VMs ever hold one address, even across processes; the row
 * goes with the VM (ON DELETE CASCADE), so an address is free again only once
 * its VM is deleted.
 */
export class IpRepo {
  constructor(private readonly db: Db) {}

  get(vmId: string): string | undefined {
    const r = this.db.prepare('SELECT ip FROM vm_ips WHERE vm_id = ?').get(vmId) as { ip: string } | undefined;
    return r?.ip;
  }

  /** Every lease, VM id → address. */
  all(): Map<string, string> {
    const rows = this.db.prepare('SELECT vm_id, ip FROM vm_ips ORDER BY ip').all() as { vm_id: string; ip: string }[];
    return new Map(rows.map((r) => [r.vm_id, r.ip]));
  }

  /**
   * The VM's address: the one it holds if that is still a guest address of
   * `bridgeIp/cidr`, else the lowest free one. One IMMEDIATE transaction
   * (SQLite's write lock) around read-and-insert, and the UNIQUE column
   * behind it. All taken: a precondition error naming the subnet.
   */
  allocate(vmId: string, bridgeIp: string, cidr: number): string {
    const s = subnet(bridgeIp, cidr);
    const tx = this.db.transaction((): string => {
      const held = this.get(vmId);
      if (held !== undefined && isGuestAddress(s, held)) return held;
      if (held !== undefined) this.release(vmId);
      const used = new Set((this.db.prepare('SELECT ip FROM vm_ips').all() as { ip: string }[]).map((r) => r.ip));
      const ip = lowestFree(s, used);
      if (ip === undefined)
        throw new AppError(
          'precondition',
          `no free guest IP in ${s.label}: all ${guestCapacity(s)} addresses are held by VMs`,
          { hint: 'delete a VM you no longer need, or set a shorter cidr (a bigger subnet) in config.toml' },
        );
      this.db
        .prepare('INSERT INTO vm_ips (vm_id, ip, allocated_at) VALUES (?, ?, ?)')
        .run(vmId, ip, new Date().toISOString());
      return ip;
    });
    return tx.immediate();
  }

  release(vmId: string): void {
    this.db.prepare('DELETE FROM vm_ips WHERE vm_id = ?').run(vmId);
  }
}
