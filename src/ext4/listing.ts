/*
 * Parsers for debugfs's read-only views of an ext4 image that banger did not
 * make (bundles): `ls -p <ino>` and `stat <ino>`. The image is untrusted, so a
 * line that does not parse exactly is an error, never skipped.
 */

export type ListedType = 'dir' | 'file' | 'symlink' | 'other';

export interface ListedEntry {
  ino: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  type: ListedType;
  uid: number;
  gid: number;
  name: string;
  /** Bytes; 0 for directories (debugfs prints none). */
  size: number;
}

const S_IFMT = 0o170000;
const TYPES: Readonly<Record<number, ListedType>> = { 0o040000: 'dir', 0o100000: 'file', 0o120000: 'symlink' };

/** One `ls -p` line: /ino/mode(octal)/uid/gid/name/size/ (size empty for directories). */
const LS_P_LINE = /^\/(\d+)\/([0-7]{6})\/(\d+)\/(\d+)\/([^/\u0000]+)\/(\d*)\/$/;

/** The command echo debugfs prints before each command's output in `-f` mode. */
export function commandEcho(command: string): string {
  return `debugfs: ${command}`;
}

/**
 * Splits the stdout of `debugfs -f script` into each command's output, in
 * order. Every command must appear as its own echo line, in the same order;
 * otherwise (truncated output, or a name that forged an echo line) it throws.
 */
export function splitByCommand(stdout: string, commands: readonly string[]): string[] {
  const lines = stdout.split('\n');
  const out: string[][] = [];
  let next = 0;
  for (const line of lines) {
    if (next < commands.length && line === commandEcho(commands[next] as string)) {
      out.push([]);
      next++;
      continue;
    }
    const cur = out[out.length - 1];
    if (cur === undefined) {
      if (line === '') continue;
      throw new Error(`unexpected debugfs output before the first command: ${JSON.stringify(line.slice(0, 80))}`);
    }
    cur.push(line);
  }
  if (next !== commands.length) throw new Error(`debugfs output ended after ${next} of ${commands.length} commands`);
  return out.map((l) => l.join('\n'));
}

/**
 * The entries of one `ls -p` output, without '.' and '..'. Throws on any line
 * that is not exactly one entry (a name with a newline or '/' cannot forge one:
 * its first fragment never ends in a size field).
 */
export function parseLsP(output: string): ListedEntry[] {
  const entries: ListedEntry[] = [];
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const m = LS_P_LINE.exec(line);
    if (m === null) throw new Error(`unparseable directory entry line ${JSON.stringify(line.slice(0, 120))}`);
    const [, ino, mode, uid, gid, name, size] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (name === '.' || name === '..') continue;
    const bits = parseInt(mode, 8);
    const type = TYPES[bits & S_IFMT] ?? 'other';
    if (type !== 'dir' && size === '') throw new Error(`directory entry ${JSON.stringify(name)} has no size`);
    entries.push({
      ino: Number(ino),
      mode: bits & 0o7777,
      type,
      uid: Number(uid),
      gid: Number(gid),
      name,
      size: size === '' ? 0 : Number(size),
    });
  }
  return entries;
}

const FAST_LINK = 'Fast link dest: "';

/**
 * The target of a fast symlink from `stat <ino>` output, given the link's size
 * (debugfs prints the target's raw bytes, so the size, not a closing quote,
 * says where it ends). Undefined for a slow symlink (its target is in a data
 * block: dump it).
 */
export function fastLinkTarget(statOutput: Buffer, size: number): Buffer | undefined {
  const at = statOutput.indexOf(FAST_LINK);
  if (at < 0) return undefined;
  const start = at + FAST_LINK.length;
  if (start + size + 1 > statOutput.length || statOutput[start + size] !== 0x22)
    throw new Error('fast symlink target does not match its size');
  return statOutput.subarray(start, start + size);
}
