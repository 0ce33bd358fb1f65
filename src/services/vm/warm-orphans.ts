import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { vmFiles, type Paths } from '../../system/paths.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { Logger } from '../context.js';
import { readHandlesFile } from './handles.js';

/**
 * Startup, before the sweep of VM dirs without a row: the VMM of a template build a killed daemon
 * left (its handles.json in such a dir) is killed, so no orphan qemu stays; the sweep then removes
 * the half-made template. `knownIds`: the VM rows.
 */
export async function killOrphanBuilds(
  d: { paths: Paths; driver: Pick<VmmDriver, 'isAlive' | 'kill'>; log: Logger },
  knownIds: ReadonlySet<string>,
): Promise<void> {
  let names: string[];
  try {
    names = await readdir(d.paths.vmsDir);
  } catch {
    return;
  }
  for (const id of names.filter((n) => !knownIds.has(n))) {
    const file = await readHandlesFile(join(d.paths.vmDir(id), vmFiles.handles));
    if (file.state !== 'ok') continue;
    if (await d.driver.isAlive(file.handles)) {
      d.log.warn('killing the VMM of a template build a stopped daemon left', { pid: file.handles.pid });
      await d.driver.kill(file.handles);
    }
    await rm(file.handles.controlSocket, { force: true });
  }
}
