import type { VmSessionInfo } from '../../src/api/methods.js';
import type { CliContext } from '../../src/cli/context.js';
import { makeStyle } from '../../src/cli/render/style.js';
import type { CommandRunner } from '../../src/system/runner.js';

/**
 * A CLI context for command tests: its daemon answers vm.ssh_info with `info` and every other call
 * with a small VM (calls are recorded); stderr collects in `out.err`; no TTY.
 */
export function fakeCli(
  info: VmSessionInfo,
  runner: CommandRunner,
): { ctx: CliContext; calls: string[]; out: { err: string } } {
  const calls: string[] = [];
  const out = { err: '' };
  const ctx = {
    client: {
      call: async (method: string) => {
        calls.push(method);
        if (method === 'vm.ssh_info') return info;
        return { name: info.name, vcpu: 1, memory_mib: 512, disk_bytes: 1 << 30 };
      },
    },
    runner,
    out: { write: () => true },
    err: { write: (s: string) => ((out.err += s), true) },
    style: makeStyle(false, {}),
    stdinIsTty: false,
    env: {},
  } as unknown as CliContext;
  return { ctx, calls, out };
}
