import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Paths } from '../system/paths.js';
import type { Logger } from './context.js';
import { removeTree } from './fsutil.js';

/** What the store knows exists; anything else on disk is a leftover. */
export interface KnownState {
  imageIds: Iterable<string>;
  kernelNames: Iterable<string>;
  vmIds: Iterable<string>;
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Startup: removes what a crash can leave behind — everything in tmp/ (every
 * staging and work dir lives there), and image, kernel and VM dirs that have
 * no row (a crash between publish and insert, or during a delete, which
 * removes the row first). Run only by the daemon holding the state-dir lock,
 * before it serves requests, so no operation of its own is in flight.
 * Entries are matched by name against the rows (never by stored absolute
 * paths, which would condemn every dir of a moved state dir). Symlinks are
 * removed, never followed. Returns the removed paths; each is logged.
 */
export async function sweepOrphans(paths: Paths, known: KnownState, log: Logger): Promise<string[]> {
  const removed: string[] = [];
  const sweep = async (dir: string, keep: Set<string>, what: string): Promise<void> => {
    for (const e of await entries(dir)) {
      if (keep.has(e)) continue;
      const path = join(dir, e);
      await removeTree(path);
      removed.push(path);
      log.warn(`removed a crash leftover: ${what}`, { path });
    }
  };
  await sweep(paths.tmpDir, new Set(), 'unfinished staging or work dir');
  await sweep(paths.imagesDir, new Set(known.imageIds), 'image dir without a row');
  await sweep(paths.kernelsDir, new Set(known.kernelNames), 'kernel dir without a row');
  await sweep(paths.vmsDir, new Set(known.vmIds), 'VM dir without a row');
  return removed;
}
