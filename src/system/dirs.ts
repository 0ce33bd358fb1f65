import { constants, lstatSync, type Stats } from 'node:fs';
import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AppError } from '../errors.js';
import type { Paths } from './paths.js';

const PRIVATE_DIR = 0o700;
const GROUP_OTHER_WRITE = 0o022;
const GROUP_OTHER_ANY = 0o077;

function unsafe(dir: string, why: string): AppError {
  return new AppError('precondition', `directory ${dir} ${why}`, {
    hint: `banger keeps its sockets there and trusts only a private directory of its own: remove it (rm -r '${dir}') or set XDG_RUNTIME_DIR to a directory of your own`,
  });
}

/** Why an existing runtime directory is not safe to use, from its lstat; undefined when it is. */
function problem(st: Stats, uid: number): string | undefined {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== uid) return `belongs to uid ${st.uid}, not to you (uid ${uid})`;
  if ((st.mode & GROUP_OTHER_WRITE) !== 0)
    return `is writable by other users (mode 0${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * The CLI's check before it talks to the socket in the runtime dir: an
 * existing dir must be a real directory of ours that nobody else can write to
 * (a missing one is created by the daemon).
 */
export function checkRuntimeDir(dir: string, uid: number): void {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const why = problem(st, uid);
  if (why !== undefined) throw unsafe(dir, why);
}

/**
 * Creates the runtime dir 0700, or takes an existing one only if it is a real
 * directory (never a symlink) owned by `uid` without group/other write (SPEC §2).
 * It is opened O_NOFOLLOW and checked and tightened through that descriptor,
 * so a link swapped in meanwhile is never followed.
 */
export async function preparePrivateDir(dir: string, uid: number): Promise<void> {
  await mkdir(dirname(dir), { recursive: true, mode: PRIVATE_DIR });
  try {
    await mkdir(dir, { mode: PRIVATE_DIR });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') checkRuntimeDir(dir, uid);
    throw e;
  }
  try {
    const st = await fh.stat();
    const why = problem(st, uid);
    if (why !== undefined) throw unsafe(dir, why);
    if ((st.mode & 0o7777) !== PRIVATE_DIR) await fh.chmod(PRIVATE_DIR);
  } finally {
    await fh.close();
  }
}

/** Creates banger's directories: the state dir 0700 (it holds the database), the runtime dir as above. */
export async function prepareDirs(paths: Paths, uid: number): Promise<void> {
  await mkdir(paths.stateDir, { recursive: true, mode: PRIVATE_DIR });
  const st = await stat(paths.stateDir);
  if (st.uid === uid && (st.mode & GROUP_OTHER_ANY) !== 0) await chmod(paths.stateDir, st.mode & 0o7700);
  for (const d of [paths.imagesDir, paths.kernelsDir, paths.vmsDir, paths.tmpDir]) {
    await mkdir(d, { recursive: true, mode: 0o755 });
  }
  await mkdir(paths.sshDir, { recursive: true, mode: PRIVATE_DIR });
  await preparePrivateDir(paths.runtimeDir, uid);
}
