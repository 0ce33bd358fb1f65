import { spawn } from 'node:child_process';

/**
 * Runs a program attached to this terminal (stdin, stdout, stderr inherited)
 * and resolves with its exit code (128+n when killed by signal n). While it
 * runs, SIGINT in banger is ignored: Ctrl-C belongs to the child (and, through
 * ssh, to the guest command).
 */
export function runAttached(argv: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('empty argv');
    const ignore = (): void => undefined;
    process.on('SIGINT', ignore);
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.on('error', (e) => {
      process.off('SIGINT', ignore);
      reject(e);
    });
    child.on('close', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 137));
    });
  });
}
