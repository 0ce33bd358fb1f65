import { badRequest } from '../errors.js';

export type MetaType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface OwnershipEntry {
  uid: number;
  gid: number;
  mode: number;
  type: MetaType;
}

export interface InjectFile {
  /** Absolute path inside the filesystem. */
  path: string;
  /** Host file whose bytes are written. */
  hostSource: string;
  /** Permission bits (0..0o7777). */
  mode: number;
  uid?: number;
  gid?: number;
}

export interface InjectSymlink {
  path: string;
  target: string;
}

export interface InjectPlan {
  dirs?: { path: string; mode?: number }[];
  files: InjectFile[];
  symlinks?: InjectSymlink[];
}

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const PERM_MASK = 0o7777;
const MAX_ID = 0xffffffff;
const DEFAULT_DIR_MODE = 0o755;

/** PATH_MAX minus the terminating NUL. */
const MAX_ARG_BYTES = 4095;
/** ext4's name length limit; debugfs 1.47 segfaults on longer components. */
const MAX_NAME_BYTES = 255;
/** debugfs reads script lines with fgets(buf, BUFSIZ=8192): longer lines are split into separate commands. */
const MAX_LINE_BYTES = 8190;

const TYPE_BITS: Record<Exclude<MetaType, 'hardlink'>, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
};

const HINT = `debugfs only takes paths without control characters, names up to ${String(MAX_NAME_BYTES)} bytes and arguments up to ${String(MAX_ARG_BYTES)} bytes`;

function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * Quotes one argument of a debugfs command line (a -f script line or -R).
 * debugfs's parser (libss) splits on whitespace, honours double quotes and
 * reads "" inside quotes as one literal quote; backslashes are literal. So the
 * argument goes in double quotes with its quotes doubled. Rejects what cannot
 * be carried: control characters (a newline ends the command), empty or
 * over-long text.
 */
export function debugfsQuote(path: string): string {
  const reason = argumentProblem(path);
  if (reason !== undefined) throw badRequest(`cannot pass ${JSON.stringify(path)} to debugfs (${reason})`, HINT);
  return `"${path.replaceAll('"', '""')}"`;
}

/** The argument debugfsQuote quoted, from its quoted form (as debugfs echoes it). */
function debugfsUnquote(quoted: string): string {
  return quoted.replaceAll('""', '"');
}

function argumentProblem(text: string): string | undefined {
  if (text === '') return 'empty';
  if (hasControlChar(text)) return 'contains a control character';
  if (Buffer.byteLength(text) > MAX_ARG_BYTES) return `longer than ${String(MAX_ARG_BYTES)} bytes`;
  return undefined;
}

function fsPathProblem(path: string): string | undefined {
  const parts = path.split('/').slice(1);
  if (!path.startsWith('/')) return 'not absolute';
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'not normalised';
  if (parts.some((p) => Buffer.byteLength(p) > MAX_NAME_BYTES))
    return `a component is longer than ${String(MAX_NAME_BYTES)} bytes`;
  return undefined;
}

/** Validates an absolute, normalised path inside the filesystem (not the root). */
function checkFsPath(path: string): string {
  const reason = fsPathProblem(path);
  if (reason !== undefined) throw badRequest(`invalid filesystem path ${JSON.stringify(path)} (${reason})`, HINT);
  return path;
}

function checkPerm(mode: number, path: string): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > PERM_MASK) {
    throw badRequest(
      `invalid mode ${String(mode)} for ${JSON.stringify(path)}`,
      'modes are permission bits between 0 and 0o7777',
    );
  }
  return mode;
}

function checkId(id: number, what: 'uid' | 'gid', path: string): number {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw badRequest(`invalid ${what} ${String(id)} for ${JSON.stringify(path)}`);
  }
  return id;
}

function line(command: string, ...args: string[]): string {
  const text = [command, ...args].join(' ');
  if (Buffer.byteLength(text) > MAX_LINE_BYTES) {
    throw badRequest(`debugfs command too long for ${args[0] ?? command}`, HINT);
  }
  return text;
}

const octal = (n: number): string => `0${n.toString(8)}`;

/** The three 'sif' lines giving `path` its full st_mode (type bits included), uid and gid. */
function sifLines(path: string, fullMode: number, uid: number, gid: number): string[] {
  const q = debugfsQuote(checkFsPath(path));
  return [
    line('sif', q, 'mode', octal(fullMode)),
    line('sif', q, 'uid', String(checkId(uid, 'uid', path))),
    line('sif', q, 'gid', String(checkId(gid, 'gid', path))),
  ];
}

const script = (lines: string[]): string => (lines.length === 0 ? '' : `${lines.join('\n')}\n`);

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * 'sif' lines setting mode (with type bits), uid and gid of every entry, in
 * path order. Hardlinks are skipped: their inode is set through the target.
 */
export function ownershipScript(meta: ReadonlyMap<string, OwnershipEntry>): string {
  const lines: string[] = [];
  for (const rel of [...meta.keys()].sort(byCodeUnit)) {
    const e = meta.get(rel);
    if (e === undefined || e.type === 'hardlink') continue;
    const path = `/${rel}`;
    lines.push(...sifLines(path, TYPE_BITS[e.type] | checkPerm(e.mode, path), e.uid, e.gid));
  }
  return script(lines);
}

/** Every proper ancestor of an absolute path, excluding '/', shallow-first. */
function ancestors(path: string): string[] {
  const parts = path.split('/').slice(1, -1);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

const depth = (path: string): number => path.split('/').length;

/** Directories to mkdir, deduplicated, parents before children. */
function mkdirTargets(plan: InjectPlan): string[] {
  const listed = (plan.dirs ?? []).map((d) => checkFsPath(d.path));
  const leaves = [...plan.files, ...(plan.symlinks ?? [])].map((e) => checkFsPath(e.path));
  const all = new Set([...listed, ...leaves].flatMap(ancestors).concat(listed));
  return [...all].sort((a, b) => depth(a) - depth(b) || byCodeUnit(a, b));
}

function fileLines(f: InjectFile): string[] {
  const q = debugfsQuote(checkFsPath(f.path));
  return [
    line('rm', q),
    line('write', debugfsQuote(f.hostSource), q),
    ...sifLines(f.path, S_IFREG | checkPerm(f.mode, f.path), f.uid ?? 0, f.gid ?? 0),
  ];
}

function dirLines(d: { path: string; mode?: number }): string[] {
  return sifLines(d.path, S_IFDIR | checkPerm(d.mode ?? DEFAULT_DIR_MODE, d.path), 0, 0);
}

function symlinkLines(s: InjectSymlink): string[] {
  const q = debugfsQuote(checkFsPath(s.path));
  return [line('rm', q), line('symlink', q, debugfsQuote(s.target))];
}

/**
 * 'stat' lines for every directory injectScript would mkdir. Run it (no -w
 * needed) and feed the stdout to existingPaths() to learn which already exist.
 */
export function probeScript(plan: InjectPlan): string {
  return script(mkdirTargets(plan).map((d) => line('stat', debugfsQuote(d))));
}

const STAT_ECHO = /^debugfs: stat "(.*)"$/;
const STAT_INODE = /^Inode: \d+\s+Type: /;

/** The paths of a probeScript run's stdout that exist (of any type): each echo line followed by an inode header. */
export function existingPaths(stdout: string): Set<string> {
  const lines = stdout.split('\n');
  const found = new Set<string>();
  lines.forEach((l, i) => {
    const echo = STAT_ECHO.exec(l);
    if (echo?.[1] !== undefined && STAT_INODE.test(lines[i + 1] ?? '')) found.add(debugfsUnquote(echo[1]));
  });
  return found;
}

/**
 * One script injecting `plan`: mkdir of every needed directory not in
 * `existing`, rm + write + sif per file so re-injection replaces, sif for the
 * listed dirs, rm + symlink per symlink.
 *
 * debugfs 1.47's mkdir writes the new inode and block before it notices the
 * name exists, and then leaves them unaccounted (e2fsck -f reports an
 * unconnected directory and bitmap differences). The error is tolerated by
 * debugfsErrors, but pass `existing` (from probeScript/existingPaths) to keep
 * the filesystem clean.
 */
export function injectScript(plan: InjectPlan, existing: ReadonlySet<string> = new Set()): string {
  return script([
    ...mkdirTargets(plan)
      .filter((d) => !existing.has(d))
      .map((d) => line('mkdir', debugfsQuote(d))),
    ...plan.files.flatMap(fileLines),
    ...(plan.dirs ?? []).flatMap(dirLines),
    ...(plan.symlinks ?? []).flatMap(symlinkLines),
  ]);
}

/** Lines debugfs prints on success: version banner, command echo, inode allocation. */
const BENIGN: readonly RegExp[] = [
  /^$/,
  /^debugfs \d+\.\d+\S* \(.*\)$/,
  // Command echoes are 'debugfs: <lowercase command>'; debugfs's own errors continue with a capital.
  /^debugfs:(?: [a-z_][a-z0-9_]*(?:\s.*)?)?$/,
  /^Allocated inode: \d+$/,
];

/** Failures the generated scripts provoke on purpose. */
const TOLERATED: readonly RegExp[] = [
  /^mkdir: Ext2 directory already exists$/,
  /^ext2fs_mkdir: Ext2 directory already exists while creating directory ".*"$/,
  /^rm: File not found by ext2_lookup while trying to resolve filename$/,
];

const matchesAny = (patterns: readonly RegExp[], text: string): boolean => patterns.some((p) => p.test(text));

/**
 * The failure lines in debugfs output (stdout and stderr, in any order).
 * debugfs exits 0 when script commands fail (only an unknown command makes it
 * exit 1), so this is the only signal.
 * Anything that is not a known success line or a tolerated failure counts.
 */
export function debugfsErrors(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => !matchesAny(BENIGN, l) && !matchesAny(TOLERATED, l));
}
