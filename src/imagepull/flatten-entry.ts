import type { AppError } from '../errors.js';

/*
 * What one tar entry of an image layer means, as pure functions: its metadata
 * (ids, mode, mtime, with PAX records preferred), OCI whiteouts, and the mode
 * the host copy gets. flatten.ts applies entries to a tree with these.
 */

export interface EntryMeta {
  uid: number;
  gid: number;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
}

/** The header fields used here, as the extractor really fills them (its typings say linkname and type are never null). */
export interface RawHeader {
  name: string;
  type: string | null;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname: string | null;
  pax?: unknown;
}

export type Reject = (reason: string) => AppError;

export const PERM_MASK = 0o7777;
const SETID_BITS = 0o6000;
const MAX_ID = 0xffffffff;
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';

export type Whiteout =
  { kind: 'opaque'; dir: string } | { kind: 'remove'; target: string } | { kind: 'ignored' } | { kind: 'invalid' };

export const dirnameOf = (rel: string): string => rel.slice(0, Math.max(0, rel.lastIndexOf('/')));
const basenameOf = (rel: string): string => rel.slice(rel.lastIndexOf('/') + 1);
export const childOf = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);
export const depthOf = (rel: string): number => rel.split('/').length;

/** The OCI whiteout meaning of a normalised path, or undefined for an ordinary entry. */
export function whiteoutOf(rel: string): Whiteout | undefined {
  const base = basenameOf(rel);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  const dir = dirnameOf(rel);
  if (base === OPAQUE_WHITEOUT) return { kind: 'opaque', dir };
  const name = base.slice(WHITEOUT_PREFIX.length);
  // '.wh..wh.*' other than the opaque marker is aufs bookkeeping with no meaning in OCI.
  if (name.startsWith(WHITEOUT_PREFIX)) return { kind: 'ignored' };
  if (name === '' || name === '.' || name === '..') return { kind: 'invalid' };
  return { kind: 'remove', target: childOf(dir, name) };
}

/** The entry's PAX records (tar-stream applies path/linkpath/size only). */
function paxOf(header: RawHeader): Partial<Record<string, string>> {
  return typeof header.pax === 'object' && header.pax !== null ? header.pax : {};
}

/** A PAX id record when present, else the ustar field. */
function idOf(pax: string | undefined, plain: number): number | undefined {
  if (pax === undefined) return plain;
  const n = /^\d+$/.test(pax) ? Number(pax) : NaN;
  return n <= MAX_ID ? n : undefined;
}

/** Meta for an entry, or the reason its ownership fields are unusable. */
export function metaOf(header: RawHeader, type: EntryMeta['type']): EntryMeta | { reason: string } {
  const pax = paxOf(header);
  const uid = idOf(pax.uid, header.uid);
  const gid = idOf(pax.gid, header.gid);
  if (uid === undefined || gid === undefined) return { reason: 'invalid PAX uid/gid' };
  return { uid, gid, mode: header.mode & PERM_MASK, type };
}

/** The entry's mtime, preferring the sub-second PAX record. */
export function mtimeOf(header: RawHeader): Date | undefined {
  const record = paxOf(header).mtime;
  const pax = record === undefined ? NaN : Number(record);
  if (Number.isFinite(pax)) return new Date(pax * 1000);
  return header.mtime instanceof Date && !Number.isNaN(header.mtime.getTime()) ? header.mtime : undefined;
}

/**
 * Mode of the host copy. As root it is exact. Otherwise the owner keeps
 * read/write(/search) access so later layers and mkfs can still use the tree,
 * and setuid/setgid are dropped; the real mode is carried by the meta map.
 */
export function hostMode(mode: number, isDir: boolean, exact: boolean): number {
  return exact ? mode : (mode | (isDir ? 0o700 : 0o600)) & ~SETID_BITS;
}
