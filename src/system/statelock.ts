import Database from 'better-sqlite3';
import { chmod, open, readFile, stat } from 'node:fs/promises';
import { AppError } from '../errors.js';

/**
 * One daemon per state dir: an exclusive POSIX (fcntl) lock on the state
 * dir's `bangerd.lock`, taken with SQLite (already the daemon's store; Node
 * itself has no flock/fcntl) and held for the daemon's life.
 * - The kernel drops it the moment its process dies, kill -9 included: there
 *   is never a stale lock to detect or break. (An O_EXCL pid file needs a
 *   liveness + start-time check and has a racy takeover; so does a socket
 *   file in the state dir, which stays behind after a crash.)
 * - Taking it is atomic: of two daemons starting together exactly one wins.
 * - It is not inherited: POSIX locks do not pass through fork, and SQLite opens
 *   the file close-on-exec, so a VMM started by the daemon (which outlives it)
 *   never keeps the lock held.
 * - It lives on the file itself: daemons in different network or mount
 *   namespaces that share the state dir still exclude each other (an
 *   abstract-namespace socket would not), and the 0600 file in the user's own
 *   state dir cannot be taken by another user to keep the daemon from starting.
 * Who holds it is read from /proc/locks, which only looks and never competes
 * for the lock.
 */
export class StateLock {
  /**
   * Every lock held by this process. A connection that nothing references is
   * closed when it is garbage-collected, which would drop the lock: the
   * daemon must hold it for its whole life whatever the caller keeps.
   */
  private static readonly held = new Set<StateLock>();

  private constructor(private readonly db: Database.Database) {
    StateLock.held.add(this);
  }

  /** Takes the lock on `lockFile` (in the state dir `stateDir`, named in the refusal) or throws naming the holder. */
  static async acquire(lockFile: string, stateDir: string): Promise<StateLock> {
    // Made 0600 before SQLite opens it (SQLite would create it 0644): a read lock by anyone else would block us.
    // Only a new file is opened here: closing any descriptor of a file drops every POSIX lock this process
    // holds on it (in-process callers, such as the tests, hold one on an existing file).
    await open(lockFile, 'wx', 0o600).then(
      (fh) => fh.close(),
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      },
    );
    await chmod(lockFile, 0o600);
    const db = new Database(lockFile, { timeout: 0 });
    try {
      db.pragma('journal_mode = OFF');
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (e) {
      db.close();
      if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
      const holder = await StateLock.holder(lockFile);
      throw new AppError(
        'precondition',
        `bangerd is already running on state dir ${stateDir}${holder?.pid ? ` (pid ${holder.pid})` : ''}`,
        {
          hint: 'only one daemon may use a state dir; `banger daemon status` shows the running one, `banger daemon stop` stops it',
        },
      );
    }
    return new StateLock(db);
  }

  /**
   * Whether a process holds the lock on `lockFile`, and its pid when this
   * process can see it (0 or absent from another pid namespace); undefined
   * when nobody holds it or the file does not exist.
   */
  static async holder(lockFile: string, procLocks = '/proc/locks'): Promise<{ pid: number | undefined } | undefined> {
    const st = await stat(lockFile).catch(() => undefined);
    if (!st) return undefined;
    const text = await readFile(procLocks, 'utf8').catch(() => '');
    return findWriteLock(text, st.dev, st.ino);
  }

  release(): void {
    StateLock.held.delete(this);
    this.db.close();
  }
}

/** Linux's encoding of a dev_t (major/minor), as printed in /proc/locks. */
function devParts(dev: number): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * The holder of a write lock on (dev, ino) in /proc/locks text. Lines look like
 * `1: POSIX  ADVISORY  WRITE 10271 fe:00:2900495 1073741824 1073742335`
 * (major and minor in hex, inode in decimal).
 */
export function findWriteLock(procLocks: string, dev: number, ino: number): { pid: number | undefined } | undefined {
  const { major, minor } = devParts(dev);
  for (const line of procLocks.split('\n')) {
    const f = line.trim().split(/\s+/);
    // A "->" marks a process waiting for the lock, not holding it.
    if (f[1] === '->') continue;
    const [, , , mode, pid, id] = f;
    if (mode !== 'WRITE' || id === undefined) continue;
    const [ma, mi, in_] = id.split(':');
    if (ma === undefined || mi === undefined || in_ === undefined) continue;
    if (parseInt(ma, 16) !== major || parseInt(mi, 16) !== minor || Number(in_) !== ino) continue;
    const n = Number(pid);
    return { pid: Number.isInteger(n) && n > 0 ? n : undefined };
  }
  return undefined;
}
