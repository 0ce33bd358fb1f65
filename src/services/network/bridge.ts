import type { Config } from '../../config/config.js';
import type { IpRepo } from '../../store/ips.js';
import type { Logger } from '../context.js';
import type { CommandRunner } from '../../system/runner.js';
import type { VmRecords } from './dns.js';
import { applyHostNet, removeHostNet } from './hostexec.js';
import { hostNetPlan, type HostNetPlan } from './hostplan.js';
import { sweepHostNet, type SweepResult } from './netsweep.js';

/*
 * Bridge-mode networking of one daemon, for the VM service to call (SPEC
 * §7.3): the guest IP lease (store/ips.ts), the host steps (hostplan.ts,
 * hostexec.ts), the `<name>.vm` record (dns.ts), and the startup sweep.
 * Lifecycle: up() on start, down() on stop, release() on delete, startup()
 * once the daemon knows which VMs run.
 */

export interface BridgeNetworkDeps {
  config: Pick<Config, 'bridgeName' | 'bridgeIp' | 'cidr'> & Partial<Pick<Config, 'dnsListen'>>;
  runner: CommandRunner;
  euid: number;
  ips: IpRepo;
  records: VmRecords;
  /** uid that opens taps (the VMM's user); omitted: root only. */
  tapOwner?: number;
  /** systemd-resolved runs: route `~vm` on the bridge to dns_listen (resolver.ts), best effort. */
  routeResolver?: boolean;
  /** Where a best-effort step that failed is reported. */
  log?: Pick<Logger, 'warn'>;
}

export interface BridgeVm {
  id: string;
  name: string;
  nat: boolean;
}

/** What the guest's static configuration (banger.ip/banger.gw) and the VMM (the tap) need. */
export interface GuestNet {
  /** Guest address with prefix, e.g. 172.16.0.2/24 (bootargs' `ip`). */
  ip: string;
  address: string;
  gateway: string;
  tap: string;
}

/**
 * The resolver a bridge-mode guest is given (banger.dns): the bridge address
 * only when the daemon's own name server listens there on port 53 (dns_listen
 * = "<bridge_ip>:53"); otherwise none, and the guest keeps the image's
 * /etc/resolv.conf (nothing else answers DNS on the bridge).
 */
export function bridgeGuestDns(dnsListen: string, bridgeIp: string): string | undefined {
  return dnsListen === `${bridgeIp}:53` ? bridgeIp : undefined;
}

export class BridgeNetwork {
  constructor(private readonly d: BridgeNetworkDeps) {}

  /** The address the VM holds, if any (no allocation). */
  lease(vmId: string): string | undefined {
    return this.d.ips.get(vmId);
  }

  /** The VM's address (allocated on first use, the same until delete). */
  address(vmId: string): string {
    return this.d.ips.allocate(vmId, this.d.config.bridgeIp, this.d.config.cidr);
  }

  plan(vm: BridgeVm, address: string): HostNetPlan {
    const c = this.d.config;
    return hostNetPlan({
      vmId: vm.id,
      bridgeName: c.bridgeName,
      bridgeIp: c.bridgeIp,
      cidr: c.cidr,
      guestIp: address,
      nat: vm.nat,
      ...(this.d.tapOwner === undefined ? {} : { tapOwner: this.d.tapOwner }),
      ...(this.d.routeResolver && c.dnsListen !== undefined ? { resolverDns: c.dnsListen } : {}),
    });
  }

  /**
   * Start: lease, host steps (reverted on failure; the lease stays, it is the
   * VM's until delete), then the name. Applying again after a crash adds
   * nothing twice.
   */
  async up(vm: BridgeVm, signal?: AbortSignal): Promise<GuestNet> {
    const address = this.address(vm.id);
    const plan = this.plan(vm, address);
    const r = await applyHostNet(this.d.runner, plan, signal ? { euid: this.d.euid, signal } : { euid: this.d.euid });
    if (r.skipped.length > 0) this.d.log?.warn('bridge networking: skipped best-effort steps', { skipped: r.skipped });
    this.d.records.set(vm.name, address);
    return { ip: `${address}/${this.d.config.cidr}`, address, gateway: this.d.config.bridgeIp, tap: plan.tap };
  }

  /** Stop: the name, the NAT rule and the tap go; the lease stays. Returns what could not be removed. */
  async down(vm: BridgeVm): Promise<string[]> {
    this.d.records.remove(vm.name);
    const address = this.d.ips.get(vm.id);
    if (address === undefined) return [];
    return removeHostNet(this.d.runner, this.plan(vm, address), { euid: this.d.euid });
  }

  /** Delete: down(), then the address is free again. */
  async release(vm: BridgeVm): Promise<string[]> {
    const failed = await this.down(vm);
    this.d.ips.release(vm.id);
    return failed;
  }

  /**
   * Daemon start: names for the running bridge-mode VMs only, and the sweep
   * of tagged taps and rules of every other VM id; the bridge goes when no
   * VM uses bridge mode any more.
   */
  async startup(running: readonly BridgeVm[], anyBridgeVm: boolean): Promise<SweepResult> {
    const leases = this.d.ips.all();
    this.d.records.replaceAll(
      running.flatMap((v) => {
        const ip = leases.get(v.id);
        return ip === undefined ? [] : [[v.name, ip] as const];
      }),
    );
    return sweepHostNet(this.d.runner, {
      liveVmIds: new Set(running.map((v) => v.id)),
      bridgeName: this.d.config.bridgeName,
      removeIdleBridge: !anyBridgeVm,
      euid: this.d.euid,
    });
  }
}
