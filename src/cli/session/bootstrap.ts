import type { VmSessionInfo } from '../../api/methods.js';
import { bootstrapArgv, bootstrapOutcome } from '../../workspace/bootstrap.js';
import type { CliContext } from '../context.js';
import { captureFromGuest } from './guest-capture.js';
import { GUEST_REPO } from './workspace-ship.js';

/** Runs `mise install` in the VM's workspace (best effort: failures are warnings); `wait` or in the background. */
export async function bootstrapTools(
  c: CliContext,
  vm: string,
  info: VmSessionInfo,
  wait: boolean,
  signal?: AbortSignal,
): Promise<void> {
  if (wait) c.err.write(c.style.dim(`bootstrap: mise install in ${vm} (waiting for it)\n`));
  let code: number;
  try {
    const r = await captureFromGuest(c.runner, c.client, {
      vm,
      info,
      argv: bootstrapArgv(GUEST_REPO, !wait),
      sink: async () => undefined,
      limit: 1 << 20,
      what: 'the bootstrap output',
      signal,
    });
    code = r.code;
  } catch (e) {
    if (signal?.aborted) throw e;
    c.err.write(`warning: the bootstrap in VM ${vm} could not run: ${e instanceof Error ? e.message : String(e)}\n`);
    return;
  }
  const o = bootstrapOutcome(vm, code, !wait);
  c.err.write(o.warning ? `${o.line}\n` : c.style.dim(`${o.line}\n`));
}
