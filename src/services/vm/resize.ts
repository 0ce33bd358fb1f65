import type { HostFacts } from '../../config/config.js';
import { formatSize } from '../../config/sizes.js';
import { badRequest, precondition } from '../../errors.js';
import type { VmRepo, VmRow } from '../../store/vms.js';
import type { VmDisks } from './disks.js';
import { checkDiskBytes, checkMemory, checkVcpu } from './limits.js';
import type { SetParams } from './params.js';

/* `vm set`: vcpu/memory/disk of a stopped VM (the work disk only grows). */

/** Checks the params before the VM's lock is taken: each value, and that there is something to change. */
export function checkSetParams(p: SetParams, host: HostFacts): void {
  if (p.vcpu !== undefined) checkVcpu(p.vcpu, host);
  if (p.memory_mib !== undefined) checkMemory(p.memory_mib, host);
  if (p.disk_bytes !== undefined) checkDiskBytes(p.disk_bytes);
  if (p.vcpu === undefined && p.memory_mib === undefined && p.disk_bytes === undefined) {
    throw badRequest('nothing to change', 'pass vcpu, memory_mib or disk_bytes (--vcpu, --memory or --disk-size)');
  }
}

/** Applies the params to `cur` (under its lock): refuses a VM that is not stopped, grows the work disk, writes the spec. */
export async function applySetParams(
  d: { vms: VmRepo; disks: VmDisks },
  cur: VmRow,
  p: SetParams,
  signal: AbortSignal,
): Promise<void> {
  const disk = p.disk_bytes;
  if (cur.state !== 'stopped' && cur.state !== 'error') {
    throw precondition(
      `VM "${cur.name}" is ${cur.state}; vm set needs it stopped`,
      `run \`banger vm stop ${cur.name}\` first`,
    );
  }
  if (disk !== undefined && disk !== cur.diskBytes) {
    if (disk < cur.diskBytes)
      throw badRequest(
        `invalid disk_bytes ${disk} (${formatSize(disk)}): smaller than the current ${cur.diskBytes} (${formatSize(cur.diskBytes)})`,
        `disks only grow: give at least ${cur.diskBytes} bytes (--disk-size ${formatSize(cur.diskBytes)})`,
      );
    await d.disks.growWork(cur.id, disk, signal);
  }
  d.vms.setSpec(cur.id, {
    vcpu: p.vcpu ?? cur.vcpu,
    memoryMib: p.memory_mib ?? cur.memoryMib,
    diskBytes: disk ?? cur.diskBytes,
  });
}
