import type { Config } from '../config/config.js';
import type { CommandRunner } from '../system/runner.js';
import type { VmmDriver } from '../vmm/driver.js';
import { QemuDriver } from '../vmm/qemu/driver.js';

/**
 * The driver-selection seam: maps config.vmm to the VmmDriver the daemon hands
 * its services. A new VMM is one more case here (the switch is exhaustive, so
 * a config value without one is a compile error).
 */
export function selectVmmDriver(config: Pick<Config, 'vmm' | 'qemuBin'>, runner: CommandRunner): VmmDriver {
  switch (config.vmm) {
    case 'auto':
    case 'qemu':
      return new QemuDriver(runner, config.qemuBin);
    case 'firecracker':
      // Not wired for real use yet: it needs bridge networking and KVM (issue 14 builds the
      // FirecrackerDriver here). The VM service refuses to create a VM with vmm = "firecracker",
      // naming why, before it makes anything; VMs that exist were booted by qemu, so the qemu
      // driver still adopts, stops and deletes them.
      return new QemuDriver(runner, config.qemuBin);
  }
}
