import { chmod, mkdir, stat } from 'node:fs/promises';
import { AppError } from '../errors.js';
import type { Paths } from './paths.js';

/** Creates banger's directories; the runtime dir must be 0700 and ours (SPEC §2). */
export async function prepareDirs(paths: Paths, uid: number): Promise<void> {
  for (const d of [paths.stateDir, paths.imagesDir, paths.kernelsDir, paths.vmsDir, paths.tmpDir]) {
    await mkdir(d, { recursive: true, mode: 0o755 });
  }
  await mkdir(paths.sshDir, { recursive: true, mode: 0o700 });
  await mkdir(paths.runtimeDir, { recursive: true, mode: 0o700 });
  const st = await stat(paths.runtimeDir);
  if (st.uid !== uid) {
    throw new AppError('precondition', `runtime directory ${paths.runtimeDir} belongs to uid ${st.uid}, not to you (uid ${uid})`, {
      hint: 'remove it or set XDG_RUNTIME_DIR to a directory of your own',
    });
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(paths.runtimeDir, 0o700);
}
