import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { precondition } from '../../errors.js';
import { existingPaths, probeScript, type InjectPlan } from '../../ext4/debugfs.js';
import { injectIntoImage } from '../../ext4/inject.js';
import { guestAssets, MOUNT_POINTS } from '../../guest/assets.js';
import type { CommandRunner } from '../../system/runner.js';
import { exists, removeTree } from '../fsutil.js';

export type MountPoint = { path: string; mode: number };

/**
 * Guest assets and the missing mount points, in one debugfs pass (an image without
 * sshd is reached through the agent: nothing installs sshd at boot). `workDir` is a private scratch dir
 * (the staging dir) where asset contents are written for debugfs to read.
 */
export async function injectGuestAssets(
  runner: CommandRunner,
  workDir: string,
  rootfs: string,
  o: { dirs: readonly MountPoint[] },
  signal: AbortSignal,
): Promise<void> {
  const base = guestAssets();
  const dir = join(workDir, 'assets');
  await mkdir(dir, { recursive: true });
  const plan: InjectPlan = { files: [], symlinks: [...base.symlinks], dirs: [...o.dirs] };
  for (const [i, f] of base.files.entries()) {
    let src: string;
    if ('hostSource' in f) {
      src = f.hostSource;
      if (!(await exists(src)))
        throw precondition(`the guest program ${src} is missing`, 'run `npm run build` in the banger checkout');
    } else {
      src = join(dir, String(i));
      await writeFile(src, f.content);
    }
    plan.files.push({ path: f.path, hostSource: src, mode: f.mode, uid: 0, gid: 0 });
  }
  await injectIntoImage(runner, rootfs, plan, signal);
  await removeTree(dir);
}

/**
 * The mount points (guest/assets.ts MOUNT_POINTS) an ext4 image lacks, found by a
 * read-only debugfs probe; one that exists as a link or a file stays as it is.
 */
export async function missingMountPoints(
  runner: CommandRunner,
  rootfs: string,
  signal: AbortSignal,
): Promise<MountPoint[]> {
  const probe = await runner.check(['debugfs', '-f', '-', rootfs], {
    input: probeScript({ files: [], dirs: [...MOUNT_POINTS] }),
    signal,
  });
  const found = existingPaths(probe.stdout);
  return MOUNT_POINTS.filter((d) => !found.has(d.path));
}
