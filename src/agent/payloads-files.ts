import { badRequest } from '../errors.js';
import { guestPath, id32, MAX_PATH } from './payload-fields.js';
import { PayloadReader, PayloadWriter } from './wire-io.js';

/** FILE_PUT, FILE_GET and FILE_INFO payloads (docs/agent-protocol.md). */

// ---- files ------------------------------------------------------------------

export interface FilePutHeader {
  mode: number;
  uid?: number;
  gid?: number;
  size: number;
  path: string;
}

export function encodeFilePut(h: FilePutHeader): Buffer {
  if (!Number.isInteger(h.mode) || h.mode < 0 || h.mode > 0o7777)
    throw badRequest(`file mode ${h.mode} is not within 0..07777`);
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw badRequest(`file size ${h.size} is not a byte count`);
  return new PayloadWriter()
    .u32(h.mode)
    .u32(id32(h.uid, 'uid'))
    .u32(id32(h.gid, 'gid'))
    .u64(h.size)
    .str(guestPath(h.path))
    .finish();
}

export function decodeFilePut(p: Buffer): Required<FilePutHeader> {
  const r = new PayloadReader(p, 'FILE_PUT');
  const h = { mode: r.u32('mode'), uid: r.u32('uid'), gid: r.u32('gid'), size: r.u64('size'), path: r.str('path') };
  r.end();
  if (h.mode > 0o7777) r.fail(`mode 0${h.mode.toString(8)} is more than permission bits`);
  if (!h.path.length || h.path.length > MAX_PATH || h.path.includes(0) || h.path[0] !== 0x2f)
    r.fail('path is not an absolute path');
  return { ...h, path: h.path.toString('utf8') };
}

export function encodeFileGet(path: string): Buffer {
  return new PayloadWriter().str(guestPath(path)).finish();
}

export function decodeFileGet(p: Buffer): string {
  const r = new PayloadReader(p, 'FILE_GET');
  const path = r.str('path');
  r.end();
  if (!path.length || path.length > MAX_PATH || path.includes(0) || path[0] !== 0x2f)
    r.fail('path is not an absolute path');
  return path.toString('utf8');
}

export interface FileInfo {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeS: number;
}

export function encodeFileInfo(i: FileInfo): Buffer {
  return new PayloadWriter().u32(i.mode).u32(i.uid).u32(i.gid).u64(i.size).i64(i.mtimeS).finish();
}

export function decodeFileInfo(p: Buffer): FileInfo {
  const r = new PayloadReader(p, 'FILE_INFO');
  const i = { mode: r.u32('mode'), uid: r.u32('uid'), gid: r.u32('gid'), size: r.u64('size'), mtimeS: r.i64('mtime') };
  r.end();
  if (i.mode > 0o7777) r.fail(`mode 0${i.mode.toString(8)} is more than permission bits`);
  return i;
}

// ---- FILE_LIST ----------------------------------------------------------------

/** Most entries a host may ask for in one FILE_LIST (the agent's AG_MAX_LIST). */
export const MAX_LIST_ENTRIES = 65536;
const LIST_ENTRY = 25;

export type DirEntryKind = 'file' | 'directory' | 'symlink' | 'other';
const KINDS: readonly DirEntryKind[] = ['file', 'directory', 'symlink', 'other'];

/** One directory entry as lstat(2) sees it: a symlink is a symlink, its size the target's length. */
export interface DirEntry {
  name: string;
  kind: DirEntryKind;
  mode: number;
  /** Bytes of a regular file or a link's target; 0 for the rest. */
  size: number;
  mtimeS: number;
}

export interface FileListReply {
  truncated: boolean;
  entries: DirEntry[];
}

export function encodeFileList(path: string, maxEntries: number): Buffer {
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_LIST_ENTRIES)
    throw badRequest(`max entries ${maxEntries} is not within 1..${MAX_LIST_ENTRIES}`);
  return new PayloadWriter().u32(maxEntries).str(guestPath(path)).finish();
}

export function decodeFileList(p: Buffer): { path: string; maxEntries: number } {
  const r = new PayloadReader(p, 'FILE_LIST');
  const maxEntries = r.u32('max_entries');
  const path = r.str('path');
  r.end();
  if (maxEntries < 1 || maxEntries > MAX_LIST_ENTRIES) r.fail(`max_entries ${maxEntries} is out of range`);
  if (!path.length || path.length > MAX_PATH || path.includes(0) || path[0] !== 0x2f)
    r.fail('path is not an absolute path');
  return { path: path.toString('utf8'), maxEntries };
}

export function encodeFileListReply(reply: FileListReply): Buffer {
  const w = new PayloadWriter().u8(reply.truncated ? 1 : 0).u32(reply.entries.length);
  for (const e of reply.entries)
    w.u8(KINDS.indexOf(e.kind) + 1)
      .u32(e.mode)
      .u64(e.size)
      .i64(e.mtimeS)
      .str(e.name);
  return w.finish();
}

/** Names are bytes in the guest; ones that are not UTF-8 come out with U+FFFD (a listing is for reading). */
export function decodeFileListReply(p: Buffer, maxEntries = MAX_LIST_ENTRIES): FileListReply {
  const r = new PayloadReader(p, 'FILE_LIST_REPLY');
  const truncated = r.u8('truncated');
  const count = r.u32('count');
  if (truncated > 1) r.fail(`truncated is ${truncated}`);
  if (count > maxEntries || count * LIST_ENTRY > p.length) r.fail(`count ${count} is more than was asked or sent`);
  const entries: DirEntry[] = [];
  for (let i = 0; i < count; i++) {
    const k = r.u8('kind');
    const mode = r.u32('mode');
    const size = r.u64('size');
    const mtimeS = r.i64('mtime');
    const name = r.str('name');
    if (k < 1 || k > KINDS.length) r.fail(`entry ${i} has kind ${k}`);
    if (mode > 0o7777) r.fail(`entry ${i} has mode 0${mode.toString(8)}, more than permission bits`);
    if (!name.length || name.length > 255 || name.includes(0) || name.includes(0x2f))
      r.fail(`entry ${i} has a name that is not a file name`);
    const s = name.toString('utf8');
    if (s === '.' || s === '..') r.fail(`entry ${i} is ${s}`);
    entries.push({ name: s, kind: KINDS[k - 1]!, mode, size, mtimeS });
  }
  r.end();
  return { truncated: truncated === 1, entries };
}
