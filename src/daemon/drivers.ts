import type { Config } from '../config/config.js';
import type { AccelDecision } from '../system/host.js';
import type { CommandRunner } from '../system/runner.js';
import { socketDialer, vsockDialer, type AgentDialer } from '../services/vm/agent.js';
import type { Paths } from '../system/paths.js';
import type { VmmKind } from '../vmm/choice.js';
import type { VmmDriver } from '../vmm/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import { QemuDriver } from '../vmm/qemu/driver.js';

/**
 * The driver-selection seam: maps the daemon's VMM choice (vmm/choice.ts
 * decideVmm, which settles vmm = "auto") to the VmmDriver it hands its
 * services. A new VMM is one more case here (the switch is exhaustive).
 */
export function selectVmmDriver(
  kind: VmmKind,
  config: Pick<Config, 'qemuBin' | 'firecrackerBin'>,
  runner: CommandRunner,
  accel: Pick<AccelDecision, 'accel'>,
): VmmDriver {
  switch (kind) {
    case 'qemu':
      return new QemuDriver(runner, config.qemuBin);
    case 'firecracker':
      // KVM and bridge networking are checked by the VM service before it makes anything
      // (services/vm/limits.ts checkVmm); the tap comes with each VM's spec (VmmSpec.net).
      return new FirecrackerDriver(runner, config.firecrackerBin, { kvmUsable: accel.accel === 'kvm' });
  }
}

/** How the daemon reaches a guest agent under each VMM: qemu's virtio-serial socket, firecracker's vsock socket. */
export function agentDialer(kind: VmmKind, paths: Paths): AgentDialer {
  return kind === 'firecracker' ? vsockDialer(paths) : socketDialer(paths);
}
