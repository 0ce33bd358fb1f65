import { AppError, badRequest, notFound, precondition } from '../errors.js';

/*
 * `vm workspace export`: the guest side that writes a patch on stdout, and
 * what its exit status means. Without a base commit: the working tree against
 * HEAD, new (untracked, non-ignored) files included, as `git diff --binary`
 * (marked intent-to-add in a temporary copy of the index, so the guest's real
 * index is untouched). With one: the commits since it, as `git format-patch`.
 */

/** Exit statuses of the guest script (git itself uses 1 and 128). */
export const EXPORT_EXIT = {
  noGit: 90,
  notRepo: 91,
  noCommits: 92,
  dirty: 93,
  badBase: 94,
  notAncestor: 95,
} as const;

/** A base commit: a SHA or a simple ref, never an option (the guest gets it as a positional parameter). */
export function checkBaseCommit(base: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}$/.test(base))
    throw badRequest(
      `--base-commit ${JSON.stringify(base)} is not a commit id`,
      'give the commit the guest work started from, e.g. the SHA `git rev-parse HEAD` printed on the host',
    );
  return base;
}

/**
 * argv of the guest side. Paths and the base are positional parameters,
 * never spliced into the script. safe.directory: the tree may be owned by
 * another uid than the one running git.
 */
export function exportArgv(dir: string, base: string | undefined): string[] {
  const e = EXPORT_EXIT;
  const script = [
    `command -v git >/dev/null 2>&1 || exit ${e.noGit}`,
    'g() { git -c safe.directory=\'*\' -c core.pager=cat -c color.ui=false "$@"; }',
    `cd -- "$1" 2>/dev/null || exit ${e.notRepo}`,
    `[ "$(g rev-parse --is-inside-work-tree 2>/dev/null)" = true ] || exit ${e.notRepo}`,
    `g rev-parse -q --verify HEAD >/dev/null || exit ${e.noCommits}`,
    'if [ -n "$2" ]; then',
    `  base=$(g rev-parse -q --verify "$2^{commit}") || exit ${e.badBase}`,
    `  [ -z "$(g status --porcelain --untracked-files=normal)" ] || exit ${e.dirty}`,
    `  g merge-base --is-ancestor "$base" HEAD || exit ${e.notAncestor}`,
    '  exec git -c safe.directory=\'*\' format-patch --stdout --binary --no-color --no-signature "$base..HEAD"',
    'fi',
    'tmp=$(mktemp) || exit 1',
    'trap \'rm -f "$tmp"\' EXIT',
    'idx=$(g rev-parse --git-path index) || exit 1',
    'if [ -f "$idx" ]; then cp -- "$idx" "$tmp" || exit 1; else rm -f "$tmp"; fi',
    'export GIT_INDEX_FILE="$tmp"',
    'g add --intent-to-add --all -- . >/dev/null || exit 1',
    'g diff --binary --no-ext-diff --no-textconv --no-color --no-renames --src-prefix=a/ --dst-prefix=b/ HEAD',
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir, base ?? ''];
}

/** What the guest's exit status means; undefined when it succeeded. */
export function exportFailure(
  vm: string,
  dir: string,
  base: string | undefined,
  code: number,
  stderr: string,
): AppError | undefined {
  const e = EXPORT_EXIT;
  switch (code) {
    case 0:
      return undefined;
    case e.noGit:
      return precondition(
        `VM ${vm} has no git: cannot export its workspace`,
        `install git in the guest (e.g. banger vm ssh ${vm} -- apt-get install -y git), or use an image that has it`,
      );
    case e.notRepo:
      return notFound(`${vm}:${dir} is not a git repository`, `ship one first: banger vm workspace prepare ${vm} PATH`);
    case e.noCommits:
      return precondition(`${vm}:${dir} has no commits: there is no HEAD to diff against`);
    case e.dirty:
      return precondition(
        `${vm}:${dir} has uncommitted changes: --base-commit exports commits only`,
        `commit them in the guest first (banger vm ssh ${vm} -- git -C ${dir} commit -am ...), or export without --base-commit to get the working-tree changes`,
      );
    case e.badBase:
      return notFound(
        `${vm}:${dir} has no commit ${JSON.stringify(base)}`,
        'give a commit the guest has, e.g. the HEAD the workspace was prepared at',
      );
    case e.notAncestor:
      return precondition(`commit ${JSON.stringify(base)} is not an ancestor of HEAD in ${vm}:${dir}`);
  }
  const tail = stderr.trim().split('\n').slice(-6).join('\n');
  return new AppError('operation_failed', `exporting ${vm}:${dir} failed (exit ${code})`, {
    hint: tail ? `the guest said:\n${tail}` : `see banger vm logs ${vm}`,
  });
}
