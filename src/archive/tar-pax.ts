/*
 * PAX extended header records ("<len> <key>=<value>\n"), parsed as bytes so
 * that binary values stay exact: `SCHILY.xattr.<name>` values are the raw
 * xattr bytes, `LIBARCHIVE.xattr.<url-encoded name>` values are base64.
 * Text keys (path, linkpath, uid, gid, size, mtime, ...) must be UTF-8.
 */

export interface PaxRecords {
  /** Text records by key (a later record replaces an earlier one). */
  strings: Map<string, string>;
  /** Extended attributes by full name, byte-exact. */
  xattrs: Array<[name: string, value: Buffer]>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const SCHILY = 'SCHILY.xattr.';
const LIBARCHIVE = 'LIBARCHIVE.xattr.';
/** Keys whose values are text the reader uses; other keys (comments, charset, acls, ...) are kept only if UTF-8. */
const XATTR_NAME_MAX = 255;

/** '%xx' escapes of a LIBARCHIVE xattr name; undefined when malformed. */
function urlDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * Parses one PAX header's data. `base` (the global records so far) is
 * extended for a 'g' header; for an 'x' header it is undefined.
 */
export function parsePax(data: Buffer, base?: PaxRecords): PaxRecords | { reason: string } {
  const strings = new Map(base?.strings ?? []);
  const xattrs = new Map<string, Buffer>(base?.xattrs ?? []);
  let off = 0;
  while (off < data.length) {
    // A header's data is often NUL-padded by writers that round it up.
    if (data[off] === 0 && data.subarray(off).every((b) => b === 0)) break;
    const sp = data.indexOf(0x20, off);
    if (sp === -1 || sp - off > 8) return { reason: `record at byte ${off} has no length` };
    const lenText = data.subarray(off, sp).toString('latin1');
    if (!/^[1-9]\d*$/.test(lenText)) return { reason: `record length ${JSON.stringify(lenText)} is not a number` };
    const len = Number(lenText);
    const end = off + len;
    if (end > data.length) return { reason: `record at byte ${off} runs past the header (${len} bytes)` };
    if (data[end - 1] !== 0x0a) return { reason: `record at byte ${off} does not end in a newline` };
    const eq = data.indexOf(0x3d, sp + 1);
    if (eq === -1 || eq >= end - 1) return { reason: `record at byte ${off} has no '='` };
    let key: string;
    try {
      key = utf8.decode(data.subarray(sp + 1, eq));
    } catch {
      return { reason: `record at byte ${off} has a key that is not UTF-8` };
    }
    if (key === '') return { reason: `record at byte ${off} has an empty key` };
    const value = Buffer.from(data.subarray(eq + 1, end - 1));
    off = end;
    if (key.startsWith(SCHILY) || key.startsWith(LIBARCHIVE)) {
      const lib = key.startsWith(LIBARCHIVE);
      const raw = key.slice(lib ? LIBARCHIVE.length : SCHILY.length);
      const name = lib ? urlDecode(raw) : raw;
      if (name === undefined || name === '' || name.includes('\0') || Buffer.byteLength(name) > XATTR_NAME_MAX) {
        return { reason: `bad xattr name in ${JSON.stringify(key.slice(0, 80))}` };
      }
      if (lib) {
        const b64 = value.toString('latin1');
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
          return { reason: `xattr ${JSON.stringify(name)}: value is not base64` };
        xattrs.set(name, Buffer.from(b64, 'base64'));
      } else {
        xattrs.set(name, value);
      }
      continue;
    }
    let v: string;
    try {
      v = utf8.decode(value);
    } catch {
      // Only the records the reader interprets must be text; others (e.g. comments) are dropped.
      if (['path', 'linkpath', 'uid', 'gid', 'size', 'mtime'].includes(key)) {
        return { reason: `${key} is not UTF-8` };
      }
      continue;
    }
    // An empty value deletes the record (POSIX), e.g. a global one.
    if (v === '') strings.delete(key);
    else strings.set(key, v);
  }
  return { strings, xattrs: [...xattrs] };
}
