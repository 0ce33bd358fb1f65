import { lstat, readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Config } from '../../config/config.js';

/*
 * [[file_sync]]: what to copy where. Host paths are the admin's (config.toml;
 * `~/` is the daemon's home); a directory is copied recursively, its regular
 * files only (links and special files are skipped with a warning), bounded in
 * count and bytes. Every file gets the entry's mode (default 0600).
 */

export type FileSyncEntry = Config['fileSync'][number];

export interface SyncFile {
  host: string;
  guest: string;
  mode: number;
  size: number;
}

export interface SyncPlan {
  files: SyncFile[];
  /** Directories the files need, in creation order. */
  dirs: string[];
  warnings: string[];
}

export const SYNC_LIMITS = { files: 5000, bytes: 64 * 1024 * 1024 };

/** `~/x` and `/root/x` → `/root/x` (config validation already refused anything else and `..`). */
export function guestTarget(guest: string): string {
  const p = guest.startsWith('~/') ? `/root/${guest.slice(2)}` : guest;
  return posix.normalize(p).replace(/\/+$/, '');
}

/** `~/x` on the host → under home. */
export function hostSource(host: string, home: string): string {
  return host === '~' ? home : host.startsWith('~/') ? join(home, host.slice(2)) : host;
}

const describe = (e: FileSyncEntry, i: number): string => `file_sync[${i}] (host = ${JSON.stringify(e.host)})`;

export async function planFileSync(
  entries: readonly FileSyncEntry[],
  home: string,
  limits = SYNC_LIMITS,
): Promise<SyncPlan> {
  const plan: SyncPlan = { files: [], dirs: [], warnings: [] };
  let bytes = 0;
  let full = false;
  const add = (f: SyncFile, what: string): void => {
    if (full) return;
    if (plan.files.length >= limits.files || bytes + f.size > limits.bytes) {
      full = true;
      plan.warnings.push(
        `${what}: stopped at ${plan.files.length} files / ${bytes} bytes (file_sync copies at most ${limits.files} files, ${limits.bytes} bytes)`,
      );
      return;
    }
    bytes += f.size;
    plan.files.push(f);
  };
  for (const [i, e] of entries.entries()) {
    const what = describe(e, i);
    const src = hostSource(e.host, home);
    const dst = guestTarget(e.guest);
    const st = await stat(src).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      plan.warnings.push(
        st.code === 'ENOENT' ? `${what}: ${src} does not exist; skipped` : `${what}: ${src}: ${st.message}; skipped`,
      );
      continue;
    }
    if (st.isFile()) add({ host: src, guest: dst, mode: e.mode, size: st.size }, what);
    else if (st.isDirectory()) await walk(src, dst, e.mode, what, add, plan.warnings, () => full);
    else plan.warnings.push(`${what}: ${src} is not a regular file or a directory; skipped`);
  }
  const dirs = new Set<string>();
  for (const f of plan.files) dirs.add(posix.dirname(f.guest));
  plan.dirs = [...dirs].filter((d) => d !== '/root').sort();
  return plan;
}

async function walk(
  src: string,
  dst: string,
  mode: number,
  what: string,
  add: (f: SyncFile, what: string) => void,
  warnings: string[],
  full: () => boolean,
): Promise<void> {
  const names = (await readdir(src)).sort();
  for (const name of names) {
    if (full()) return;
    const h = join(src, name);
    const g = posix.join(dst, name);
    const st = await lstat(h);
    if (st.isFile()) add({ host: h, guest: g, mode, size: st.size }, what);
    else if (st.isDirectory()) await walk(h, g, mode, what, add, warnings, full);
    else warnings.push(`${what}: ${h} is not a regular file or a directory; skipped`);
  }
}
