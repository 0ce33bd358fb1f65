import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { AppError } from '../errors.js';

/**
 * One daemon per state dir. The lock is a listening Unix socket in Linux's
 * abstract namespace, named after the state dir's real path:
 * - the kernel releases it the moment its process dies, kill -9 included, so
 *   there is never a stale lock to detect or break (an O_EXCL pid file needs
 *   a liveness + start-time check and a racy takeover; a socket file in the
 *   state dir stays behind after a crash and has the same takeover race);
 * - bind() is atomic: of two daemons starting together exactly one wins;
 * - Node opens it close-on-exec, so VMM processes the daemon starts (which
 *   outlive it) never inherit it and never keep the lock held;
 * - it needs no helper process or native addon (Node has no flock).
 * Limits: abstract names are per network namespace, so two daemons in
 * different namespaces are not kept apart; any local user can see (and bind
 * first) the name, which can stop a daemon from starting but never lets
 * anyone into it. The holder answers a connection with its pid, so the
 * refusal can name it.
 */
export class StateLock {
  private constructor(private readonly server: Server) {}

  static async acquire(stateDir: string, pid = process.pid): Promise<StateLock> {
    const name = stateLockName(await realpath(stateDir));
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.end(`${pid}\n`);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      const holder = await askHolder(name, 2000);
      throw new AppError('precondition', `bangerd is already running on state dir ${stateDir}${holder === undefined ? '' : ` (pid ${holder})`}`, {
        hint: 'only one daemon may use a state dir; `banger daemon status` shows the running one, `banger daemon stop` stops it',
      });
    }
    // The lock must never keep the process alive by itself.
    server.unref();
    return new StateLock(server);
  }

  release(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The abstract socket name for a state dir (a leading NUL: nothing on disk). */
export function stateLockName(stateDirReal: string): string {
  return `\0banger-state-lock-${createHash('sha256').update(stateDirReal).digest('hex').slice(0, 32)}`;
}

/** The pid the lock holder reports, or undefined when it does not answer in time. */
function askHolder(name: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const sock = createConnection(name);
    const done = (v: number | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (text += d.slice(0, 32)));
    sock.on('end', () => {
      const n = Number(text.trim());
      done(Number.isInteger(n) && n > 0 ? n : undefined);
    });
    sock.on('error', () => done(undefined));
  });
}
