import { badRequest } from '../errors.js';

/*
 * Pure parts of shipping git history into a workspace: which commits are the
 * shallow boundary, which settings of the host repo's config ship, and the
 * guest's .git/config text.
 *
 * Config policy: only `user.*` and an allow-list of `core.*` settings that do
 * not run programs or name host paths ship. Everything else stays on the host:
 * hooks (core.hooksPath), credential helpers, http.* (extraHeader tokens),
 * includes, and remotes — remote URLs can carry tokens and point at hosts the
 * guest has no route to, so the guest checkout has no remotes at all.
 */

/** The default number of commits of history a workspace ships. */
export const DEFAULT_DEPTH = 50;
/** Upper bound for --depth (a shallow pack of more than this is a full clone's job). */
export const MAX_DEPTH = 100_000;

/** `core.*` keys (lower-case) that ship: behaviour of the work tree, nothing that runs or names a host path. */
const SAFE_CORE = new Set([
  'core.autocrlf',
  'core.eol',
  'core.safecrlf',
  'core.filemode',
  'core.ignorecase',
  'core.precomposeunicode',
  'core.protecthfs',
  'core.protectntfs',
  'core.symlinks',
  'core.quotepath',
  'core.whitespace',
  'core.commentchar',
  'core.commentstring',
  'core.abbrev',
  'core.checkstat',
  'core.trustctime',
  'core.bigfilethreshold',
  'core.compression',
  'core.loosecompression',
  'core.warnambiguousrefs',
]);

/** One `key=value` of `git config --list -z` (key lower-cased by git for section and name). */
export interface ConfigEntry {
  key: string;
  value: string;
}

/** Parses `git config --local --list -z`: NUL-terminated "key\nvalue" records (a key alone means true). */
export function parseConfigList(out: string): ConfigEntry[] {
  return out
    .split('\0')
    .filter((r) => r !== '')
    .map((r) => {
      const nl = r.indexOf('\n');
      return nl < 0 ? { key: r, value: 'true' } : { key: r.slice(0, nl), value: r.slice(nl + 1) };
    });
}

/** Whether a setting of the host repo's config ships into the guest checkout. */
export function configShips(key: string): boolean {
  const k = key.toLowerCase();
  // Two-part `user.<name>` only: no subsections, nothing else.
  if (/^user\.[a-z0-9-]+$/.test(k)) return true;
  return SAFE_CORE.has(k);
}

/** The settings that ship, in their order (a key set twice keeps both, as git would read them). */
export const filterConfig = (entries: readonly ConfigEntry[]): ConfigEntry[] =>
  entries.filter((e) => configShips(e.key));

/** A config value as git reads it back exactly: quoted, with \\ " newline and tab escaped. */
export function quoteConfigValue(v: string): string {
  const body = v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
  return `"${body}"`;
}

/** The guest's .git/config: what `git init` writes (core.filemode may ship) plus the shipped settings. */
export function renderConfig(shipped: readonly ConfigEntry[]): string {
  const fileMode = [...shipped].reverse().find((e) => e.key.toLowerCase() === 'core.filemode');
  const sections = new Map<string, string[]>([
    [
      'core',
      [
        'repositoryformatversion = 0',
        `filemode = ${fileMode ? quoteConfigValue(fileMode.value) : 'true'}`,
        'bare = false',
        'logallrefupdates = true',
      ],
    ],
  ]);
  for (const e of shipped) {
    const dot = e.key.indexOf('.');
    const section = e.key.slice(0, dot).toLowerCase();
    const name = e.key.slice(dot + 1).toLowerCase();
    if (section === 'core' && name === 'filemode') continue;
    sections.set(section, [...(sections.get(section) ?? []), `${name} = ${quoteConfigValue(e.value)}`]);
  }
  return [...sections].map(([s, lines]) => `[${s}]\n${lines.map((l) => `\t${l}\n`).join('')}`).join('');
}

/**
 * The shallow boundary of `git rev-list --parents --max-count=N` output: the
 * listed commits with a parent outside the list, plus those the host repo
 * itself has as shallow. Sorted, each once.
 */
export function shallowBoundary(revParents: string, hostShallow: readonly string[] = []): string[] {
  const rows = revParents
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/));
  const listed = new Set(rows.map((r) => r[0] as string));
  const hostSet = new Set(hostShallow);
  const out = new Set<string>();
  for (const [c, ...parents] of rows)
    if (parents.some((p) => !listed.has(p)) || hostSet.has(c as string)) out.add(c as string);
  return [...out].sort();
}

/** The stdin of `git pack-objects --revs`: the tip and one `--shallow` line per boundary commit. */
export const packRevsInput = (tip: string, boundary: readonly string[]): string =>
  [tip, ...boundary.map((b) => `--shallow ${b}`)].map((l) => `${l}\n`).join('');

/** Parses --depth: a whole number from 1 to MAX_DEPTH. */
export function parseDepth(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_DEPTH;
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_DEPTH)
    throw badRequest(
      `invalid --depth ${JSON.stringify(raw)}: not a whole number from 1 to ${MAX_DEPTH}`,
      `--depth ${DEFAULT_DEPTH} ships the ${DEFAULT_DEPTH} most recent commits`,
    );
  return n;
}

/** The branch of a full ref name (`refs/heads/x` → x); undefined for anything else. */
export function branchOf(fullRef: string): string | undefined {
  const m = /^refs\/heads\/(.+)$/.exec(fullRef.trim());
  return m ? m[1] : undefined;
}
