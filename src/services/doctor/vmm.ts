import type { Config } from '../../config/config.js';
import { openStore } from '../../store/db.js';
import { KernelRepo, type KernelRow } from '../../store/kernels.js';
import type { AccelDecision } from '../../system/host.js';
import type { Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import { decideVmm, firecrackerBlockers } from '../../vmm/choice.js';
import { probeVmmFacts } from '../../vmm/facts.js';
import type { CheckRow } from './checks.js';

/** The default kernel's row from the store (read-only), when there is a store and the kernel. */
function readKernel(paths: Paths, name: string): KernelRow | undefined {
  try {
    const db = openStore(paths.dbFile, { readonly: true });
    try {
      return new KernelRepo(db).get(name);
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** The `vmm` row: which VMM the daemon would run and why (vmm/choice.ts); vmm = "firecracker" that cannot run fails. */
export async function vmmRow(i: {
  config: Config;
  paths: Paths;
  accel: AccelDecision;
  runner: CommandRunner;
  which: (bin: string) => Promise<string | undefined>;
  hasStore: boolean;
}): Promise<CheckRow> {
  const facts = await probeVmmFacts({
    config: i.config,
    accel: i.accel,
    runner: i.runner,
    which: i.which,
    kernel: (name) => (i.hasStore ? readKernel(i.paths, name) : undefined),
  });
  const choice = decideVmm(facts);
  if (i.config.vmm === 'firecracker') {
    const blockers = firecrackerBlockers(facts);
    if (blockers.length > 0)
      return {
        name: 'vmm',
        status: 'FAIL',
        detail: `vmm = "firecracker" cannot run here: ${blockers.join('; ')}`,
        fix: 'set vmm = "auto" or "qemu" in config.toml, or fix what is named',
      };
  }
  return { name: 'vmm', status: 'PASS', detail: `${choice.vmm} (${choice.reason})` };
}
