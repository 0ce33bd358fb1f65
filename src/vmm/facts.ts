import type { Config } from '../config/config.js';
import type { KernelRow } from '../store/kernels.js';
import type { AccelDecision } from '../system/host.js';
import type { CommandRunner } from '../system/runner.js';
import type { VmmFacts } from './choice.js';

/** The host reads behind a VMM choice (choice.ts decideVmm); read-only, each bounded in time. */
export async function probeVmmFacts(i: {
  config: Pick<Config, 'vmm' | 'networkMode' | 'firecrackerBin' | 'defaultKernelName'>;
  accel: Pick<AccelDecision, 'accel' | 'reason'>;
  runner: CommandRunner;
  which: (bin: string) => Promise<string | undefined>;
  kernel: (name: string) => Pick<KernelRow, 'name' | 'format' | 'traits' | 'hasInitrd'> | undefined;
}): Promise<VmmFacts> {
  const c = i.config;
  const path = await i.which(c.firecrackerBin);
  let versionText: string | undefined;
  if (path !== undefined) {
    const res = await i.runner.run([path, '--version'], { timeoutMs: 5000 }).catch(() => undefined);
    if (res?.code === 0) versionText = res.stdout;
  }
  const k = i.kernel(c.defaultKernelName);
  return {
    want: c.vmm,
    networkMode: c.networkMode,
    firecracker: { bin: c.firecrackerBin, path, versionText },
    accel: i.accel,
    kernel: k && { name: k.name, format: k.format, traits: k.traits, hasInitrd: k.hasInitrd },
    defaultKernelName: c.defaultKernelName,
  };
}
