import { operationFailed } from '../errors.js';
import type { CommandRunner } from '../system/runner.js';
import { debugfsErrors, existingPaths, injectScript, probeScript, type InjectPlan } from './debugfs.js';

/** Runs one debugfs -w script on an image and turns any reported failure into an error. */
export async function runDebugfs(
  runner: CommandRunner,
  image: string,
  script: string,
  signal?: AbortSignal,
): Promise<void> {
  if (!script.trim()) return;
  const res = await runner.check(['debugfs', '-w', '-f', '-', image], { input: script, ...(signal ? { signal } : {}) });
  const errors = debugfsErrors(`${res.stdout}\n${res.stderr}`);
  if (errors.length > 0)
    throw operationFailed(`debugfs could not edit ${image}`, {
      detail: errors.slice(0, 10).join('\n'),
      hint: errors.slice(0, 5).join('\n'),
    });
}

/**
 * Injects files into an ext4 image in one write pass. Directories that exist
 * are probed first (read-only), because debugfs's mkdir of an existing
 * directory leaks an inode and a block.
 */
export async function injectIntoImage(
  runner: CommandRunner,
  image: string,
  plan: InjectPlan,
  signal?: AbortSignal,
): Promise<void> {
  const probe = await runner.check(['debugfs', '-f', '-', image], {
    input: probeScript(plan),
    ...(signal ? { signal } : {}),
  });
  await runDebugfs(runner, image, injectScript(plan, existingPaths(probe.stdout)), signal);
}
