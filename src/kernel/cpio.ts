import { badRequest } from '../errors.js';

export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; data: Buffer }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; mode: number; major: number; minor: number };

export interface ParsedCpioEntry {
  path: string;
  /** Full st_mode, including the file-type bits. */
  mode: number;
  size: number;
  target?: string;
  major?: number;
  minor?: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const PERM_MASK = 0o7777;

const MAGIC = '070701';
const MAGIC_CRC = '070702';
const HEADER_LEN = 110;
const TRAILER = 'TRAILER!!!';
const MAX_FIELD = 0xffffffff;

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

function checkPath(path: string): void {
  if (path === '' || path.includes('\0')) {
    throw badRequest(
      `invalid cpio entry path ${JSON.stringify(path)}`,
      'paths must be non-empty and contain no NUL bytes',
    );
  }
  if (path.startsWith('/')) {
    throw badRequest(`cpio entry path must be relative: ${JSON.stringify(path)}`, 'drop the leading "/"');
  }
  if (path.split('/').includes('..')) {
    throw badRequest(`cpio entry path must not contain "..": ${JSON.stringify(path)}`);
  }
  if (path === TRAILER) {
    throw badRequest(`cpio entry path ${JSON.stringify(path)} is reserved for the archive trailer`);
  }
}

function checkField(value: number, what: string, path: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
    throw badRequest(`invalid ${what} ${value} for cpio entry ${JSON.stringify(path)}`);
  }
}

interface HeaderFields {
  ino: number;
  mode: number;
  nlink: number;
  filesize: number;
  rdevmajor: number;
  rdevminor: number;
}

/** Header, name, NUL and the padding that aligns the data start to 4 bytes. */
function headerAndName(f: HeaderFields, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const namesize = nameBytes.length + 1;
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const header =
    MAGIC +
    hex(f.ino) +
    hex(f.mode) +
    hex(0) + // uid
    hex(0) + // gid
    hex(f.nlink) +
    hex(0) + // mtime
    hex(f.filesize) +
    hex(0) + // devmajor
    hex(0) + // devminor
    hex(f.rdevmajor) +
    hex(f.rdevminor) +
    hex(namesize) +
    hex(0); // check
  const total = HEADER_LEN + namesize;
  const out = Buffer.alloc(total + pad4(total));
  out.write(header, 0, 'ascii');
  nameBytes.copy(out, HEADER_LEN);
  return out;
}

/**
 * Builds an uncompressed newc archive: entries in the given order, uid/gid 0,
 * mtime 0 (reproducible), ino increasing from 1, nlink 2 for dirs and 1
 * otherwise, names without leading '/', header+name and data each padded to
 * 4 bytes, terminated by the 'TRAILER!!!' entry. Throws on absolute paths or
 * paths with '..' components. Only the permission bits of `mode` are used; the
 * type bits come from `type`.
 */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    checkPath(e.path);
    let mode: number;
    let nlink = 1;
    let data: Buffer = Buffer.alloc(0);
    let rdevmajor = 0;
    let rdevminor = 0;
    switch (e.type) {
      case 'dir':
        checkField(e.mode, 'mode', e.path);
        mode = S_IFDIR | (e.mode & PERM_MASK);
        nlink = 2;
        break;
      case 'file':
        checkField(e.mode, 'mode', e.path);
        mode = S_IFREG | (e.mode & PERM_MASK);
        data = e.data;
        break;
      case 'symlink':
        if (e.target === '' || e.target.includes('\0')) {
          throw badRequest(`invalid symlink target for cpio entry ${JSON.stringify(e.path)}`);
        }
        mode = S_IFLNK | 0o777;
        data = Buffer.from(e.target, 'utf8');
        break;
      case 'chardev':
        checkField(e.mode, 'mode', e.path);
        checkField(e.major, 'major', e.path);
        checkField(e.minor, 'minor', e.path);
        mode = S_IFCHR | (e.mode & PERM_MASK);
        rdevmajor = e.major;
        rdevminor = e.minor;
        break;
    }
    checkField(data.length, 'size', e.path);
    parts.push(headerAndName({ ino, mode, nlink, filesize: data.length, rdevmajor, rdevminor }, e.path));
    if (data.length > 0) {
      parts.push(data);
      const p = pad4(data.length);
      if (p > 0) parts.push(Buffer.alloc(p));
    }
    ino++;
  }
  parts.push(headerAndName({ ino: 0, mode: 0, nlink: 1, filesize: 0, rdevmajor: 0, rdevminor: 0 }, TRAILER));
  return Buffer.concat(parts);
}

function corrupt(offset: number, why: string): Error {
  return badRequest(
    `invalid cpio archive at offset ${offset}: ${why}`,
    'expected an uncompressed newc ("070701") cpio archive',
  );
}

/**
 * Parses a newc (or newc-with-checksum) archive up to its trailer. `size` is
 * the stored file size (0 for all but the last link of a hard-linked file).
 * Symlinks carry their target, character and block devices their rdev
 * major/minor.
 */
export function parseCpioNewc(buf: Buffer): ParsedCpioEntry[] {
  const out: ParsedCpioEntry[] = [];
  let off = 0;
  for (;;) {
    if (off + HEADER_LEN > buf.length) throw corrupt(off, 'truncated header (missing TRAILER!!!)');
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== MAGIC && magic !== MAGIC_CRC) throw corrupt(off, `bad magic ${JSON.stringify(magic)}`);
    const field = (i: number): number => {
      const start = off + 6 + i * 8;
      const s = buf.toString('ascii', start, start + 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw corrupt(start, `bad header field ${JSON.stringify(s)}`);
      return parseInt(s, 16);
    };
    const mode = field(1);
    const filesize = field(6);
    const rdevmajor = field(9);
    const rdevminor = field(10);
    const namesize = field(11);
    if (namesize < 1) throw corrupt(off, 'empty name');
    const nameStart = off + HEADER_LEN;
    const nameEnd = nameStart + namesize;
    if (nameEnd > buf.length) throw corrupt(off, 'truncated name');
    if (buf[nameEnd - 1] !== 0) throw corrupt(off, 'name is not NUL-terminated');
    const name = buf.toString('utf8', nameStart, nameEnd - 1);
    const dataStart = nameEnd + pad4(HEADER_LEN + namesize);
    const dataEnd = dataStart + filesize;
    if (dataEnd > buf.length) throw corrupt(off, `truncated data for ${JSON.stringify(name)}`);
    if (name === TRAILER) return out;
    const entry: ParsedCpioEntry = { path: name, mode, size: filesize };
    const type = mode & S_IFMT;
    if (type === S_IFLNK) entry.target = buf.toString('utf8', dataStart, dataEnd);
    if (type === S_IFCHR || type === S_IFBLK) {
      entry.major = rdevmajor;
      entry.minor = rdevminor;
    }
    out.push(entry);
    off = dataEnd + pad4(filesize);
  }
}
