import { spawn } from 'node:child_process';
import type { CliResult } from './home.js';

/**
 * Runs argv with `env` and stdin closed; after `timeoutMs` it is killed and
 * the result says so (timedOut), so a command that hangs fails its test
 * instead of hanging it.
 */
export function runBounded(
  argv: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<CliResult & { timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, timedOut });
    });
  });
}
