import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { AppError, badRequest } from '../errors.js';
import type { CommandRunner, StreamingProcess } from '../system/runner.js';
import { branchOf, filterConfig, packRevsInput, parseConfigList, renderConfig, shallowBoundary } from './gitmeta.js';
import { splitNul } from './preflight.js';

/*
 * The host side of shipping history: which commit and branch the guest gets,
 * the shallow boundary of the last `depth` commits, the filtered config, the
 * user's global identity, and the pack itself as a stream from
 * `git pack-objects --revs --stdout` with `--shallow` lines (what git's own
 * upload-pack does for a shallow fetch): no temporary copy of anything.
 */

export interface HistoryOptions {
  /** --from: a commit-ish; default HEAD. */
  from?: string | undefined;
  /** --branch: the guest's branch name; default the branch --from names (none: detached). */
  branch?: string | undefined;
  depth: number;
}

export interface History {
  commit: string;
  /** The guest's branch; undefined: a detached HEAD. */
  branch: string | undefined;
  /** true: the files are --from's tree (checked out in the guest), not the host's work tree. */
  checkout: boolean;
  /** Commits whose parents are not shipped (.git/shallow). */
  shallow: string[];
  /** Commits shipped. */
  commits: number;
  /** The guest's .git/config. */
  config: string;
  /** The host user's global identity, for the guest's global config. */
  identity: { name: string; email: string };
}

const GIT_ENV = { GIT_DIR: undefined, GIT_WORK_TREE: undefined, GIT_INDEX_FILE: undefined };
/** The host's own .git/shallow read at most this far. */
const SHALLOW_MAX = 4 * 1024 * 1024;

async function git(runner: CommandRunner, root: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await runner.run(['git', '-C', root, ...args], { env: GIT_ENV });
  return { code: r.code, out: r.stdout };
}

async function hostShallow(runner: CommandRunner, root: string): Promise<string[]> {
  const p = await git(runner, root, ['rev-parse', '--git-path', 'shallow']);
  if (p.code !== 0) return [];
  const rel = p.out.trim();
  const text = await readFile(isAbsolute(rel) ? rel : join(root, rel), 'utf8').catch(() => '');
  return text
    .slice(0, SHALLOW_MAX)
    .split('\n')
    .filter((l) => /^[0-9a-f]{40,64}$/.test(l));
}

export async function resolveHistory(
  runner: CommandRunner,
  root: string,
  head: string | null,
  o: HistoryOptions,
): Promise<History> {
  const from = o.from ?? 'HEAD';
  if (from.startsWith('-'))
    throw badRequest(`invalid --from ${JSON.stringify(from)}`, 'pass a branch, tag or commit (e.g. --from main)');
  const c = await git(runner, root, ['rev-parse', '--verify', '--quiet', `${from}^{commit}`]);
  if (c.code !== 0)
    throw badRequest(
      head === null && o.from === undefined
        ? `the repository at ${root} has no commits: there is no history to ship`
        : `--from ${JSON.stringify(from)} is not a commit in ${root}`,
      head === null ? 'commit first (git commit)' : 'pass a branch, tag or commit (git log --oneline shows some)',
    );
  const commit = c.out.trim();
  let branch: string | undefined;
  if (o.branch !== undefined) {
    const v = await git(runner, root, ['check-ref-format', '--branch', o.branch]);
    if (v.code !== 0 || o.branch.startsWith('-') || o.branch === 'HEAD')
      throw badRequest(
        `invalid --branch ${JSON.stringify(o.branch)}: not a valid git branch name`,
        'e.g. --branch try-fix',
      );
    branch = o.branch;
  } else {
    const full = await git(runner, root, ['rev-parse', '--symbolic-full-name', from]);
    branch = full.code === 0 ? branchOf(full.out) : undefined;
  }
  const revs = await git(runner, root, ['rev-list', '--parents', `--max-count=${o.depth}`, commit]);
  if (revs.code !== 0) throw new AppError('operation_failed', `git rev-list ${commit} failed in ${root}`);
  const shallow = shallowBoundary(revs.out, await hostShallow(runner, root));
  const cfg = await git(runner, root, ['config', '--local', '--list', '-z']);
  const config = renderConfig(filterConfig(cfg.code === 0 ? parseConfigList(cfg.out) : []));
  const id = async (k: string): Promise<string> => {
    const r = await runner.run(['git', 'config', '--global', '--get', k], { env: GIT_ENV });
    return r.code === 0 ? r.stdout.trim() : '';
  };
  return {
    commit,
    branch,
    checkout: commit !== head,
    shallow,
    commits: revs.out.split('\n').filter((l) => l !== '').length,
    config,
    identity: { name: await id('user.name'), email: await id('user.email') },
  };
}

/** The files of a commit's tree (--from other than the work tree's HEAD): what the guest checks out. */
export async function treeFiles(runner: CommandRunner, root: string, commit: string): Promise<string[]> {
  const r = await git(runner, root, ['ls-tree', '-r', '-z', '--name-only', commit]);
  if (r.code !== 0) throw new AppError('operation_failed', `git ls-tree ${commit} failed in ${root}`);
  return splitNul(r.out);
}

/** The pack of the shipped history, streamed from git pack-objects. */
export function streamPack(runner: CommandRunner, root: string, h: History): StreamingProcess {
  const input = packRevsInput(h.commit, h.shallow);
  async function* revs(): AsyncIterable<Uint8Array> {
    yield Buffer.from(input);
  }
  return runner.stream(['git', '-C', root, 'pack-objects', '--revs', '--stdout', '-q'], {
    env: GIT_ENV,
    stdin: revs(),
  });
}
