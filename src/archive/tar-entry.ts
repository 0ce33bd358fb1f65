import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Header } from 'tar-stream';

/*
 * Pieces shared by the tar extractors (image layers in imagepull/flatten.ts,
 * kernel tarballs, image bundles): entry names, draining, and the lstat that
 * every "is something already at this path" check starts from.
 */

/** An entry as tar-stream's extractor yields it: header plus data chunks. */
export type TarEntry = AsyncIterable<unknown> & { header: Header };

/** True when `text` holds a C0 control character or DEL. */
export function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export type NormalizedPath = { rel: string } | { reason: string };

/**
 * The relative form of an archive path ('' is the root), or why it is refused.
 * Leading './', '.' and empty components are dropped; absolute paths, '..'
 * components and control characters (which debugfs cannot carry) are refused.
 */
export function normalizeEntryPath(name: string): NormalizedPath {
  if (hasControlChar(name)) return { reason: 'control character in name' };
  if (name.startsWith('/')) return { reason: 'absolute path' };
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return { reason: "'..' component" };
  return { rel: parts.join('/') };
}

/** Reads and discards the rest of an entry's data. */
export async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of entry) {
    // discard
  }
}

/** lstat(), or null when nothing is at `path`. */
export async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
