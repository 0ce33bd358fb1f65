import { open, rm, statfs } from 'node:fs/promises';
import { errorMessage, precondition } from '../../errors.js';
import { preparePrivateDir } from '../../system/dirs.js';
import type { Paths } from '../../system/paths.js';
import type { CommandRunner } from '../../system/runner.js';
import type { VmRow } from '../../store/vms.js';

/* A restored guest's RAM (issue 17): the template's memory file copied into a private dir on
   /dev/shm (Paths.ramDir), which the VMM maps shared. A tmpfs: the guest's writes never reach a
   disk. A full tmpfs would fail the guest's writes, so a restore needs room for all its memory. */

const MIB = 1024 * 1024;

/** Why the RAM dir cannot take a guest of `memoryMib` now (undefined: it can). */
export async function ramRoom(paths: Paths, memoryMib: number): Promise<string | undefined> {
  const dir = paths.ramDir;
  try {
    await preparePrivateDir(dir, process.getuid?.() ?? 0);
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < memoryMib * MIB)
      return `${dir} has ${Math.floor(free / MIB)} MiB free, less than the VM's memory (${memoryMib} MiB)`;
    return undefined;
  } catch (e) {
    return `no room for the guest's memory in ${dir}: ${errorMessage(e)}`;
  }
}

/** Copies `src` (sparse) to the VM's file in the RAM dir, made here first (O_EXCL, 0600); returns its path. */
export async function copyMemory(
  paths: Paths,
  runner: CommandRunner,
  vm: Pick<VmRow, 'id' | 'memoryMib'>,
  src: string,
  signal: AbortSignal,
): Promise<string> {
  const room = await ramRoom(paths, vm.memoryMib);
  if (room) throw precondition(room, 'free memory on /dev/shm, or pass --cold');
  const target = paths.ramFile(vm.id);
  await (await open(target, 'wx', 0o600)).close();
  try {
    await runner.check(['cp', '--sparse=always', src, target], { signal });
  } catch (e) {
    await rm(target, { force: true });
    throw e;
  }
  return target;
}
