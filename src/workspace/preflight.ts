import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { AppError, badRequest } from '../errors.js';
import type { CommandRunner } from '../system/runner.js';

/*
 * Workspace preflight, on the host, before any VM exists: the path exists and
 * is inside a non-bare git work tree without submodules; the files to ship are
 * the tracked ones, plus the untracked non-ignored ones when asked; ignored
 * files never. Git runs through the runner, argv only.
 */

/** What a workspace ships: the work tree's top, its HEAD and the exact file list. */
export interface WorkspacePlan {
  /** Absolute top of the work tree. */
  root: string;
  /** HEAD's commit, null in a repo without commits. */
  head: string | null;
  /** Paths relative to root, sorted, each once. */
  files: string[];
  includeUntracked: boolean;
  /** Untracked non-ignored files left out (without --include-untracked). */
  skippedUntracked: number;
  /** The untracked files among `files` (empty without --include-untracked). */
  untracked: string[];
}

/** One entry of `git ls-files -s -z`. */
export interface IndexEntry {
  mode: string;
  path: string;
}

/** Splits NUL-terminated output (`-z`) into its records. */
export function splitNul(out: string): string[] {
  return out.split('\0').filter((s) => s !== '');
}

/** Parses `git ls-files -s -z`: "<mode> <object> <stage>\t<path>" records; a path in several stages once. */
export function parseIndex(out: string): IndexEntry[] {
  const seen = new Set<string>();
  const entries: IndexEntry[] = [];
  for (const rec of splitNul(out)) {
    const tab = rec.indexOf('\t');
    const m = /^([0-7]{6}) [0-9a-f]+ [0-3]$/.exec(rec.slice(0, tab));
    if (tab < 0 || !m) throw new AppError('operation_failed', `unexpected git ls-files output: ${JSON.stringify(rec)}`);
    const path = rec.slice(tab + 1);
    if (seen.has(path)) continue;
    seen.add(path);
    entries.push({ mode: m[1] as string, path });
  }
  return entries;
}

/** Gitlinks (mode 160000) are submodules. */
export const submodules = (entries: readonly IndexEntry[]): string[] =>
  entries.filter((e) => e.mode === '160000').map((e) => e.path);

/** The file list rule: tracked always, untracked only when included; sorted, each once. */
export function fileList(
  tracked: readonly string[],
  untracked: readonly string[],
  includeUntracked: boolean,
): { files: string[]; skippedUntracked: number } {
  const set = new Set(tracked);
  const extra = untracked.filter((p) => !set.has(p));
  if (includeUntracked) for (const p of extra) set.add(p);
  return {
    files: [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    skippedUntracked: includeUntracked ? 0 : extra.length,
  };
}

async function git(
  runner: CommandRunner,
  cwd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const r = await runner.run(['git', '-C', cwd, ...args], { env: { GIT_DIR: undefined, GIT_WORK_TREE: undefined } });
  return { code: r.code, out: r.stdout, err: r.stderr.trim() };
}

export async function preflight(
  runner: CommandRunner,
  path: string,
  opts: { includeUntracked: boolean },
): Promise<WorkspacePlan> {
  const abs = resolve(path);
  const st = await stat(abs).catch(() => undefined);
  if (!st) throw badRequest(`workspace path ${JSON.stringify(path)} does not exist`, 'pass the path of a git checkout');
  if (!st.isDirectory())
    throw badRequest(
      `workspace path ${JSON.stringify(path)} is not a directory`,
      'pass the directory of a git checkout',
    );
  const probe = await git(runner, abs, ['rev-parse', '--is-bare-repository', '--is-inside-work-tree']);
  if (probe.code !== 0)
    throw badRequest(
      `workspace path ${JSON.stringify(path)} is not inside a git repository`,
      'run `git init && git add -A && git commit -m init` there first, or pass a checkout',
    );
  const [bare, inside] = probe.out.trim().split('\n');
  if (bare === 'true' || inside !== 'true')
    throw badRequest(
      `workspace path ${JSON.stringify(path)} is ${bare === 'true' ? 'a bare git repository' : 'not inside a git work tree'}: there are no files to ship`,
      'pass a checkout with a work tree (`git clone <bare> <dir>` makes one)',
    );
  const top = await git(runner, abs, ['rev-parse', '--show-toplevel']);
  if (top.code !== 0) throw new AppError('operation_failed', `git rev-parse --show-toplevel failed: ${top.err}`);
  const root = top.out.trim();
  const index = await git(runner, root, ['ls-files', '-s', '-z']);
  if (index.code !== 0) throw new AppError('operation_failed', `git ls-files failed in ${root}: ${index.err}`);
  const entries = parseIndex(index.out);
  const subs = submodules(entries);
  if (subs.length > 0)
    throw badRequest(
      `the repository at ${root} has submodules (${subs.slice(0, 3).join(', ')}${subs.length > 3 ? ', …' : ''}); banger does not ship submodules`,
      'ship a checkout without submodules (e.g. `git clone` it without --recurse-submodules and `git rm` the submodule there)',
    );
  const others = await git(runner, root, ['ls-files', '-z', '--others', '--exclude-standard']);
  if (others.code !== 0)
    throw new AppError('operation_failed', `git ls-files --others failed in ${root}: ${others.err}`);
  const head = await git(runner, root, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
  const tracked = entries.map((e) => e.path);
  const list = fileList(tracked, splitNul(others.out), opts.includeUntracked);
  const trackedSet = new Set(tracked);
  return {
    root,
    head: head.code === 0 ? head.out.trim() : null,
    includeUntracked: opts.includeUntracked,
    untracked: opts.includeUntracked ? list.files.filter((p) => !trackedSet.has(p)) : [],
    ...list,
  };
}
