import type { BuildImageEntry } from '../../catalog/embedded.js';
import { operationFailed } from '../../errors.js';
import type { CommandRunner } from '../../system/runner.js';
import type { LayerInput } from './pipeline.js';

/**
 * A build recipe as one pipeline input: mmdebstrap writing the root tree as a
 * tar stream to stdout (`mirror` undefined lets mmdebstrap choose).
 */
export function mmdebstrapLayer(
  runner: CommandRunner,
  entry: BuildImageEntry,
  mirror: string | undefined,
  signal: AbortSignal,
): LayerInput {
  return {
    label: 'mmdebstrap',
    open: async () => {
      const argv = [
        'mmdebstrap',
        '--mode=auto',
        '--variant=apt',
        `--include=${entry.packages.join(',')}`,
        '--format=tar',
        entry.suite,
        '-',
      ];
      if (mirror) argv.push(mirror);
      const proc = runner.stream(argv, { signal });
      const finished = proc.done.then((res) => {
        if (res.code !== 0) {
          throw operationFailed(`mmdebstrap failed (exit ${res.code}) building ${entry.name}`, {
            detail: res.stderr.trim().split('\n').slice(-10).join('\n'),
            hint: `check that the Debian mirror is reachable and \`banger doctor\` passes; mmdebstrap said:\n${res.stderr.trim().split('\n').slice(-3).join('\n')}`,
          });
        }
      });
      return { stream: proc.stdout, finished };
    },
  };
}
