import { badRequest, type AppError } from '../errors.js';
import { parsePax, type PaxRecords } from './tar-pax.js';

/*
 * Our own streaming tar reader for untrusted image layers: ustar, GNU long
 * names/links (L/K) and PAX (x/g) with byte-exact binary values, so
 * `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` (ACLs, file capabilities)
 * arrive as the bytes the image holds. Every header is checked (checksum,
 * magic, numeric fields, sizes of extended headers) and every refusal is a
 * badRequest naming the entry and what is wrong. Nothing is buffered but
 * one header and the extended headers (bounded); file data is streamed.
 */

export type TarEntryType = 'file' | 'link' | 'symlink' | 'chr' | 'blk' | 'dir' | 'fifo' | 'unknown';

export interface TarTime {
  sec: number;
  nsec: number;
}

export interface TarHeader {
  /** Path as the archive gives it (PAX path, else GNU long name, else prefix/name). */
  name: string;
  type: TarEntryType;
  /** The raw typeflag character (useful in messages for 'unknown'). */
  typeflag: string;
  /** Permission bits, setuid/setgid/sticky included (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (0 for links, directories, devices). */
  size: number;
  mtime: TarTime;
  /** Hardlink or symlink target ('' when none). */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes by full name, values byte-exact, in archive order (later duplicates replace earlier). */
  xattrs: Array<[name: string, value: Buffer]>;
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's data; must be read to the end (or left to the reader, which then skips it) before the next entry. */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
/** GNU long names/links: PATH_MAX is 4096; anything past 64 KiB is not a path. */
export const MAX_LONG_NAME = 64 * 1024;
/** One PAX header (x or g): xattrs included (an ext4 xattr value is at most one 4 KiB block, a few of them fit easily). */
export const MAX_PAX_HEADER = 1024 * 1024;
/** Extended headers in a row before a real entry. */
const MAX_META_HEADERS = 8;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'chr',
  '4': 'blk',
  '5': 'dir',
  '6': 'fifo',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes → text; names that are not UTF-8 are refused (a lossy decode would write a different name). */
function text(buf: Buffer, what: string, fail: (r: string) => AppError): string {
  try {
    return utf8.decode(buf);
  } catch {
    throw fail(`${what} is not valid UTF-8`);
  }
}

/** A NUL-terminated field (or the whole field when it has no NUL). */
function cstr(block: Buffer, off: number, len: number): Buffer {
  const field = block.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

/** An octal (or GNU base-256) numeric field, or a reason. */
export function numField(block: Buffer, off: number, len: number): number | { reason: string } {
  const field = block.subarray(off, off + len);
  const first = field[0] as number;
  if (first & 0x80) {
    if (first === 0xff) return { reason: 'negative base-256 number' };
    let n = first & 0x7f;
    for (let i = 1; i < len; i++) {
      n = n * 256 + (field[i] as number);
      if (n > MAX_SAFE) return { reason: 'base-256 number too large' };
    }
    return n;
  }
  const s = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return { reason: `not an octal number: ${JSON.stringify(s)}` };
  return parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = numField(block, 148, 8);
  if (typeof stored !== 'number') return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** A decimal PAX number (ids, size), or undefined when it is not one. */
function paxInt(v: string | undefined, max: number): number | undefined | 'bad' {
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v)) return 'bad';
  const n = Number(v);
  return n <= max ? n : 'bad';
}

/** A PAX time ("-12.5", "1700000000.123456789") as whole seconds and nanoseconds, exactly. */
export function paxTime(v: string): TarTime | undefined {
  const m = /^(-?)(\d{1,15})(?:\.(\d{0,30}))?$/.exec(v);
  if (m === null) return undefined;
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  let sec = Number(m[2]);
  let nsec = Number(frac);
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}

/** Buffered reads over an async byte stream: exact blocks, bounded body chunks, skips. */
class Source {
  readonly #it: AsyncIterator<unknown>;
  #buf: Buffer = Buffer.alloc(0);
  #done = false;

  constructor(input: AsyncIterable<unknown>) {
    this.#it = input[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#done) return false;
    const r = await this.#it.next();
    if (r.done === true) {
      this.#done = true;
      return false;
    }
    const chunk = r.value as Uint8Array;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#buf = this.#buf.length === 0 ? b : Buffer.concat([this.#buf, b]);
    return true;
  }

  /** Exactly n bytes, or what was left (shorter) at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.#buf.length < n && (await this.#fill()));
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  /** Up to `max` bytes as they arrive (empty only at the end of the stream). */
  async some(max: number): Promise<Buffer> {
    if (this.#buf.length === 0) await this.#fill();
    const out = this.#buf.subarray(0, max);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

const padOf = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

interface Pending {
  pax: PaxRecords | undefined;
  longName: Buffer | undefined;
  longLink: Buffer | undefined;
}

/**
 * Reads tar entries from `input`. Each entry's body must be consumed before
 * asking for the next one (what is left unread is skipped). `label` names the
 * archive in error messages, e.g. 'layer 2/3'.
 */
export async function* readTar(input: AsyncIterable<unknown>, label: string): AsyncGenerator<TarEntry> {
  const src = new Source(input);
  let global: PaxRecords = { strings: new Map(), xattrs: [] };
  let index = 0;
  try {
    for (;;) {
      let pending: Pending = { pax: undefined, longName: undefined, longLink: undefined };
      let metas = 0;
      let header: TarHeader | undefined;
      while (header === undefined) {
        const at = `${label}: header ${index + 1}`;
        const fail = (reason: string): AppError =>
          badRequest(`malformed tar in ${at} (${reason})`, 'the image layer is not a valid tar archive; rebuild it');
        const block = await src.read(BLOCK);
        if (block.length === 0 && metas === 0) return;
        if (block.length < BLOCK) throw fail('archive ends inside a header');
        if (block.every((b) => b === 0)) {
          if (metas > 0) throw fail('archive ends after an extended header');
          // End of archive: the rest (second zero block, padding) is not read.
          return;
        }
        index++;
        if (!checksumOk(block)) throw fail('bad header checksum');
        const magic = block.subarray(257, 265).toString('latin1');
        const gnu = magic === 'ustar  \0';
        if (!gnu && !magic.startsWith('ustar\0')) throw fail('not a ustar, GNU or PAX header');
        const typeflag = String.fromCharCode(block[156] as number);
        const size = numField(block, 124, 12);
        if (typeof size !== 'number') throw fail(`size: ${size.reason}`);
        if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
          if (++metas > MAX_META_HEADERS) throw fail('too many extended headers in a row');
          const max = typeflag === 'L' || typeflag === 'K' ? MAX_LONG_NAME : MAX_PAX_HEADER;
          if (size > max) throw fail(`extended header of ${size} bytes (at most ${max})`);
          const data = await src.read(size);
          if (data.length < size) throw fail('archive ends inside an extended header');
          if ((await src.read(padOf(size))).length < padOf(size)) throw fail('archive ends inside padding');
          if (typeflag === 'L') pending.longName = cstr(data, 0, data.length);
          else if (typeflag === 'K') pending.longLink = cstr(data, 0, data.length);
          else {
            const parsed = parsePax(data, typeflag === 'g' ? global : undefined);
            if ('reason' in parsed) throw fail(`PAX header: ${parsed.reason}`);
            if (typeflag === 'g') global = parsed;
            else pending.pax = parsed;
          }
          continue;
        }
        header = decodeHeader(block, gnu, typeflag, size, pending, global, fail);
        pending = { pax: undefined, longName: undefined, longLink: undefined };
      }
      const total = header.size;
      let left = total;
      const body = async function* (): AsyncGenerator<Buffer> {
        while (left > 0) {
          const chunk = await src.some(Math.min(left, 1024 * 1024));
          if (chunk.length === 0) break;
          left -= chunk.length;
          yield chunk;
        }
      };
      yield { header, body: body() };
      // Whatever the consumer left unread, then the padding to the block.
      while (left > 0) {
        const chunk = await src.some(Math.min(left, 1024 * 1024));
        if (chunk.length === 0) break;
        left -= chunk.length;
      }
      const pad = padOf(total);
      if (left > 0 || (await src.read(pad)).length < pad) {
        throw badRequest(
          `malformed tar in ${label}: archive ends inside the data of ${JSON.stringify(header.name)}`,
          'the image layer is truncated; pull it again',
        );
      }
    }
  } finally {
    await src.close();
  }
}

function decodeHeader(
  block: Buffer,
  gnu: boolean,
  typeflag: string,
  ustarSize: number,
  pending: Pending,
  global: PaxRecords,
  fail: (r: string) => AppError,
): TarHeader {
  const pax = pending.pax;
  const get = (k: string): string | undefined => pax?.strings.get(k) ?? global.strings.get(k);
  if (typeflag === 'S' || get('GNU.sparse.major') !== undefined || get('GNU.sparse.size') !== undefined) {
    throw fail('sparse file entries are not supported');
  }
  if (typeflag === 'M' || typeflag === 'V') throw fail(`GNU multi-volume or volume header (type ${typeflag})`);
  let name: string;
  const paxPath = pax?.strings.get('path');
  if (paxPath !== undefined) name = paxPath;
  else if (pending.longName !== undefined) name = text(pending.longName, 'GNU long name', fail);
  else {
    const base = text(cstr(block, 0, 100), 'name', fail);
    const prefix = gnu ? '' : text(cstr(block, 345, 155), 'name prefix', fail);
    name = prefix === '' ? base : `${prefix}/${base}`;
  }
  if (name === '') throw fail('empty name');
  const paxLink = pax?.strings.get('linkpath');
  const linkname =
    paxLink ?? (pending.longLink !== undefined ? text(pending.longLink, 'GNU long link', fail) : undefined);
  const field = (what: string, off: number, len: number): number => {
    const v = numField(block, off, len);
    if (typeof v !== 'number') throw fail(`${what}: ${v.reason}`);
    return v;
  };
  const id = (key: string, off: number): number => {
    const v = paxInt(get(key), 0xffffffff);
    if (v === 'bad') throw fail(`PAX ${key} ${JSON.stringify(get(key))} is not a 32-bit id`);
    const n = v ?? field(key, off, 8);
    if (n > 0xffffffff) throw fail(`${key} ${n} is not a 32-bit id`);
    return n;
  };
  const paxSize = paxInt(get('size'), MAX_SAFE);
  if (paxSize === 'bad') throw fail(`PAX size ${JSON.stringify(get('size'))} is not a size`);
  let mtime: TarTime = { sec: field('mtime', 136, 12), nsec: 0 };
  const pm = get('mtime');
  if (pm !== undefined) {
    const t = paxTime(pm);
    if (t === undefined) throw fail(`PAX mtime ${JSON.stringify(pm)} is not a time`);
    mtime = t;
  }
  const type = TYPES[typeflag] ?? 'unknown';
  const xattrs = new Map<string, Buffer>();
  for (const [k, v] of [...global.xattrs, ...(pax?.xattrs ?? [])]) xattrs.set(k, v);
  return {
    name,
    type,
    typeflag,
    mode: field('mode', 100, 8) & 0o7777,
    uid: id('uid', 108),
    gid: id('gid', 116),
    size: paxSize ?? ustarSize,
    mtime,
    linkname: linkname ?? text(cstr(block, 157, 100), 'link name', fail),
    devmajor: type === 'chr' || type === 'blk' ? field('devmajor', 329, 8) : 0,
    devminor: type === 'chr' || type === 'blk' ? field('devminor', 337, 8) : 0,
    xattrs: [...xattrs],
  };
}
