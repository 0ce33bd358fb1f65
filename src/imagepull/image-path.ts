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
