import type { PublishedPort, VmPublished } from '../../api/views.js';
import { notFound, precondition } from '../../errors.js';
import type { PortRepo } from '../../store/ports.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import { probeBind } from '../../system/portprobe.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import type { PortProxies } from '../network/portproxy.js';
import {
  formatPublication,
  hostKey,
  matchesRef,
  parsePublicationRef,
  parsePublications,
  type Publication,
} from './portspec.js';
import { vmmHandles } from './runtime.js';
import { isLive } from './states.js';

/*
 * Published ports (issue 14): recorded on the VM (store/ports.ts) from
 * create or `vm publish` until `vm unpublish` or delete, applied while the VM
 * runs: a user-mode VM's by its VMM (qemu hostfwd at boot, over QMP at
 * runtime), a bridge-mode VM's by the daemon's relays (network/portproxy.ts).
 */

export interface PublishDeps {
  vms: VmRepo;
  ports: PortRepo;
  driver: VmmDriver;
  proxies: PortProxies;
  log: Logger;
  /** A bridge-mode VM's guest address. */
  address(vm: Pick<VmRow, 'id' | 'networkMode'>): string | undefined;
  resolve(ref: string): VmRow;
  /** The VM service's per-VM lock. */
  lock<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

/** Refuses any of `pubs` the host cannot bind now (taken, or not a host address), naming it. */
export async function checkBindable(pubs: readonly Publication[]): Promise<void> {
  for (const p of pubs) {
    const why = await probeBind(p.address, p.hostPort, p.protocol);
    if (why === undefined) continue;
    throw precondition(
      `cannot publish ${hostKey(p)}: ${why === 'EADDRINUSE' ? 'the port is taken on the host' : why}`,
      why === 'EADDRINUSE'
        ? `pick another host port, or stop what listens on ${p.address}:${p.hostPort}`
        : `is ${p.address} an address of this host?`,
    );
  }
}

export function publishedView(p: Publication): PublishedPort {
  return {
    protocol: p.protocol,
    address: p.address,
    host_port: p.hostPort,
    guest_port: p.guestPort,
    spec: formatPublication(p),
  };
}

export class VmPublisher {
  constructor(private readonly d: PublishDeps) {}

  /** vm.create: the specs parsed and checked (not published by another VM, bindable now) before anything is made. */
  async checkNew(specs: readonly string[] | undefined): Promise<Publication[]> {
    const pubs = parsePublications(specs ?? []);
    this.d.ports.checkFree(pubs);
    await checkBindable(pubs);
    return pubs;
  }

  list(vmId: string): Publication[] {
    return this.d.ports.list(vmId);
  }

  view(vmId: string): PublishedPort[] {
    return this.list(vmId).map(publishedView);
  }

  /**
   * Before the VMM starts: a user-mode VM's ports must be free (its VMM
   * binds them, VmmNet.forwards); a bridge-mode VM's relays open (all or none).
   */
  async up(vm: VmRow): Promise<void> {
    const pubs = this.list(vm.id);
    if (pubs.length === 0) return;
    if (vm.networkMode !== 'bridge') return checkBindable(pubs);
    await this.d.proxies.add(vm.id, this.guestIp(vm), pubs);
  }

  /** Stop, failed start, delete: a bridge-mode VM's relays close (a user-mode VM's forwards end with its VMM). */
  async down(vmId: string): Promise<void> {
    await this.d.proxies.closeVm(vmId);
  }

  /** Daemon start: the relays of running bridge-mode VMs open again (they died with the last daemon). */
  async startup(vms: readonly VmRow[]): Promise<void> {
    for (const vm of vms) {
      if (!isLive(vm.state) || vm.networkMode !== 'bridge') continue;
      await this.up(vm).catch((e: unknown) =>
        this.d.log.warn('cannot publish the ports of a running VM again', { name: vm.name, error: String(e) }),
      );
    }
  }

  /** `vm publish`: recorded, and applied now when the VM runs; a failure leaves nothing recorded or applied. */
  async publish(ref: string, specs: readonly string[]): Promise<VmPublished> {
    const pubs = parsePublications(specs);
    const vm = this.d.resolve(ref);
    return this.d.lock(vm.id, async () => {
      const cur = this.settled(vm.id, 'vm publish');
      this.d.ports.checkFree(pubs);
      await checkBindable(pubs);
      this.d.ports.add(cur.id, pubs);
      try {
        if (cur.state === 'running') await this.apply(cur, pubs);
      } catch (e) {
        for (const p of pubs) this.d.ports.remove(cur.id, p);
        throw e;
      }
      return { name: cur.name, published: this.view(cur.id) };
    });
  }

  /** `vm unpublish`: each spec must name a published port of the VM; removed from the running VM, then forgotten. */
  async unpublish(ref: string, specs: readonly string[]): Promise<VmPublished> {
    const refs = specs.map(parsePublicationRef);
    const vm = this.d.resolve(ref);
    return this.d.lock(vm.id, async () => {
      const cur = this.settled(vm.id, 'vm unpublish');
      const held = this.list(cur.id);
      const gone = refs.map((r, i) => {
        const p = held.find((h) => matchesRef(h, r));
        if (!p)
          throw notFound(
            `VM "${cur.name}" does not publish ${JSON.stringify(specs[i])}`,
            held.length > 0
              ? `it publishes ${held.map(formatPublication).join(', ')}`
              : 'it publishes no ports (see `banger vm show`)',
          );
        return p;
      });
      for (const p of gone) {
        if (cur.state === 'running') await this.unapply(cur, p);
        this.d.ports.remove(cur.id, p);
      }
      return { name: cur.name, published: this.view(cur.id) };
    });
  }

  /** Adds `pubs` to the running VM, all or none. */
  private async apply(vm: VmRow, pubs: readonly Publication[]): Promise<void> {
    if (vm.networkMode === 'bridge') return this.d.proxies.add(vm.id, this.guestIp(vm), pubs);
    const { driver } = this.d;
    if (!driver.forward || !vm.handles)
      throw precondition(`vmm = "${driver.kind}" cannot forward ports of VM "${vm.name}" at runtime`);
    const done: Publication[] = [];
    try {
      for (const p of pubs) {
        await driver.forward(vmmHandles(vm.handles), 'add', p);
        done.push(p);
      }
    } catch (e) {
      for (const p of done) await driver.forward(vmmHandles(vm.handles), 'remove', p).catch(() => undefined);
      throw e;
    }
  }

  private async unapply(vm: VmRow, p: Publication): Promise<void> {
    if (vm.networkMode === 'bridge') return this.d.proxies.remove(vm.id, p);
    if (this.d.driver.forward && vm.handles) await this.d.driver.forward(vmmHandles(vm.handles), 'remove', p);
  }

  private guestIp(vm: VmRow): string {
    const ip = this.d.address(vm);
    if (ip === undefined) throw precondition(`VM "${vm.name}" has no guest address to publish ports to`);
    return ip;
  }

  /** The VM now, refused while it is between states (its ports are applied by the start or stop under way). */
  private settled(id: string, what: string): VmRow {
    const vm = this.d.vms.get(id);
    if (!vm) throw notFound(`VM ${id} disappeared`);
    if (vm.state !== 'running' && vm.state !== 'stopped' && vm.state !== 'error')
      throw precondition(
        `VM "${vm.name}" is ${vm.state}; ${what} needs it running or stopped`,
        'try again in a moment',
      );
    return vm;
  }
}
