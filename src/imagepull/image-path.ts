import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryMeta } from './flatten.js';

/*
 * Looking inside a flattened image without trusting it: its symlinks are
 * resolved against the image's own root, from the extractor's metadata,
 * never by the host kernel (which would follow `/etc/os-release -> /dev/zero`
 * out of the tree).
 */

/** Linux's limit on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_SYMLINK_HOPS = 40;

/**
 * The path (relative to the image root, no leading '/') that `path` names
 * inside the image, following its symlinks as the guest would see them:
 * absolute targets start again at the image root and '..' stops there.
 * Undefined when a component is missing, is not a directory, or the links
 * loop. `readlink` reads a symlink of the tree (given its resolved path).
 */
export function resolveImagePath(
  path: string,
  meta: ReadonlyMap<string, EntryMeta>,
  readlink: (rel: string) => string,
): { rel: string; meta: EntryMeta } | undefined {
  const todo = path
    .split('/')
    .filter((c) => c !== '' && c !== '.')
    .reverse();
  const cur: string[] = [];
  let hops = 0;
  for (let comp = todo.pop(); comp !== undefined; comp = todo.pop()) {
    if (comp === '..') {
      cur.pop();
      continue;
    }
    const rel = [...cur, comp].join('/');
    const m = meta.get(rel);
    if (m === undefined) return undefined;
    if (m.type === 'symlink') {
      if (++hops > MAX_SYMLINK_HOPS) return undefined;
      const target = readlink(rel);
      if (target.startsWith('/')) cur.length = 0;
      todo.push(
        ...target
          .split('/')
          .filter((c) => c !== '' && c !== '.')
          .reverse(),
      );
      continue;
    }
    if (todo.length === 0) return { rel, meta: m };
    if (m.type !== 'dir') return undefined;
    cur.push(comp);
  }
  return cur.length === 0 ? undefined : { rel: cur.join('/'), meta: meta.get(cur.join('/')) as EntryMeta };
}

/** True when `path` resolves inside the image to a regular file. */
export function isImageFile(
  path: string,
  meta: ReadonlyMap<string, EntryMeta>,
  readlink: (rel: string) => string,
): boolean {
  const r = resolveImagePath(path, meta, readlink);
  return r !== undefined && (r.meta.type === 'file' || r.meta.type === 'hardlink');
}

/**
 * Reads a regular file of the image tree at `tree`/`path` (resolved inside the
 * image), at most `maxBytes`; undefined when it is missing, not a regular file
 * or larger. The final open is O_NOFOLLOW|O_NONBLOCK and checked with fstat,
 * so even a tree changed behind banger's back cannot make it read a link
 * target or block on a FIFO.
 */
export async function readImageFile(
  tree: string,
  path: string,
  meta: ReadonlyMap<string, EntryMeta>,
  readlink: (rel: string) => string,
  maxBytes: number,
): Promise<Buffer | undefined> {
  const r = resolveImagePath(path, meta, readlink);
  if (r === undefined || (r.meta.type !== 'file' && r.meta.type !== 'hardlink')) return undefined;
  let fh;
  try {
    fh = await open(join(tree, r.rel), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > maxBytes) return undefined;
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
