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
