import type { Config } from '../../config/config.js';
import { precondition } from '../../errors.js';
import type { VmRow } from '../../store/vms.js';
import type { Logger } from '../context.js';
import { isLive } from './states.js';
import { bridgeGuestDns, type BridgeNetwork, type BridgeVm } from '../network/bridge.js';

/** A bridge-mode guest's side of one boot: its static configuration (banger.ip/gw/dns) and its tap. */
export interface BridgedGuest {
  /** Address with prefix, e.g. 172.16.0.2/24. */
  ip: string;
  gateway: string;
  /** Undefined: no banger.dns (see bridgeGuestDns). */
  dns: string | undefined;
  tap: string;
}

export type { BridgeNetwork };

type NetVm = Pick<VmRow, 'id' | 'name' | 'nat' | 'networkMode'>;

const bridgeVm = (vm: NetVm): BridgeVm => ({ id: vm.id, name: vm.name, nat: vm.nat });

/**
 * The VM service's side of networking (SPEC §7.3): a user-mode VM needs
 * nothing from the host; a bridge-mode VM holds a guest IP from create to
 * delete, and a tap, its `<name>.vm` record (and with `--nat` its one
 * MASQUERADE rule) from start to stop. Every method is a no-op for a
 * user-mode VM.
 */
export class VmNetworking {
  constructor(
    private readonly bridge: BridgeNetwork | undefined,
    private readonly config: Pick<Config, 'networkMode' | 'dnsListen' | 'bridgeIp'>,
    private readonly log: Logger,
  ) {}

  /** The network mode a new VM gets: the configured one. */
  get mode(): 'user' | 'bridge' {
    return this.config.networkMode;
  }

  /** The address a bridge-mode VM holds (shown by vm show/list, used by ssh), or undefined. */
  address(vm: Pick<VmRow, 'id' | 'networkMode'>): string | undefined {
    return vm.networkMode === 'bridge' ? this.bridge?.lease(vm.id) : undefined;
  }

  /** Create: a bridge-mode VM's address, held until delete. */
  allocate(vm: NetVm): void {
    if (vm.networkMode === 'bridge') this.need(vm).address(vm.id);
  }

  /** Before the VMM starts: the tap (and NAT rule) and the name; undefined for a user-mode VM. */
  async up(vm: NetVm, signal?: AbortSignal): Promise<BridgedGuest | undefined> {
    if (vm.networkMode !== 'bridge') return undefined;
    const net = await this.need(vm).up(bridgeVm(vm), signal);
    return {
      ip: net.ip,
      gateway: net.gateway,
      dns: bridgeGuestDns(this.config.dnsListen, this.config.bridgeIp),
      tap: net.tap,
    };
  }

  /** Stop (or a failed start): the name, the NAT rule and the tap go; the address stays. */
  async down(vm: NetVm): Promise<void> {
    if (vm.networkMode !== 'bridge' || !this.bridge) return;
    const failed = await this.bridge.down(bridgeVm(vm));
    if (failed.length > 0) this.log.warn('cannot remove host networking of a VM', { name: vm.name, failed });
  }

  /** Delete: down(), and the address is free again. */
  async release(vm: NetVm): Promise<void> {
    if (vm.networkMode !== 'bridge' || !this.bridge) return;
    const failed = await this.bridge.release(bridgeVm(vm));
    if (failed.length > 0) this.log.warn('cannot remove host networking of a VM', { name: vm.name, failed });
  }

  /** Daemon start, after reconcile: names of the running bridge-mode VMs, and the sweep of everything else. */
  async startup(vms: readonly VmRow[]): Promise<void> {
    if (!this.bridge) return;
    const bridged = vms.filter((v) => v.networkMode === 'bridge');
    // A paused VM keeps its tap and addresses: its VMM lives.
    const running = bridged.filter((v) => isLive(v.state)).map(bridgeVm);
    const swept = await this.bridge.startup(running, bridged.length > 0);
    if (swept.taps.length + swept.rules.length > 0 || swept.bridge)
      this.log.info('removed host networking of VMs that are gone', { ...swept });
    if (swept.errors.length > 0) this.log.warn('host networking sweep incomplete', { errors: swept.errors });
  }

  private need(vm: NetVm): BridgeNetwork {
    if (!this.bridge)
      throw precondition(
        `VM "${vm.name}" uses bridge networking, and this daemon runs with network_mode = "user"`,
        'set network_mode = "bridge" in config.toml and restart the daemon, or delete the VM',
      );
    return this.bridge;
  }
}
