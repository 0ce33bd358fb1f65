import type { Config } from '../config/config.js';
import type { AccelDecision } from '../system/host.js';
import type { CommandRunner } from '../system/runner.js';
import type { VmmDriver } from '../vmm/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import { QemuDriver } from '../vmm/qemu/driver.js';

/**
 * The driver-selection seam: maps config.vmm to the VmmDriver the daemon hands
 * its services. A new VMM is one more case here (the switch is exhaustive, so
 * a config value without one is a compile error).
 */
export function selectVmmDriver(
  config: Pick<Config, 'vmm' | 'qemuBin' | 'firecrackerBin'>,
  runner: CommandRunner,
  accel: Pick<AccelDecision, 'accel'>,
): VmmDriver {
  switch (config.vmm) {
    case 'auto':
    case 'qemu':
      return new QemuDriver(runner, config.qemuBin);
    case 'firecracker':
      // Not usable for real yet: it declares KVM and bridge networking, which the VM service
      // checks before it makes anything (services/vm/limits.ts checkVmm) and refuses with a
      // hint; wiring the network it needs is issue 14.
      return new FirecrackerDriver(runner, config.firecrackerBin, { kvmUsable: accel.accel === 'kvm' });
  }
}
