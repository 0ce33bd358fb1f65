/*
 * The guest side of a workspace, as argv (sh -c with positional parameters:
 * nothing from the host is spliced into a script). A git workspace is built
 * in `<dir>.banger-new` and only replaces `<dir>` once complete.
 */

/** What the guest has: git or not, and the state of the target dir. */
export interface GuestState {
  git: boolean;
  /** absent/empty: nothing to lose; clean: a git checkout without changes; dirty: one with; files: not a checkout. */
  target: 'empty' | 'clean' | 'dirty' | 'files';
  /** The guest checkout's HEAD when it has one. */
  head?: string | undefined;
}

/** Probes the guest: prints `git`/`nogit`, the target state, and HEAD when there is one. */
export function probeArgv(dir: string): string[] {
  const script = [
    'if command -v git >/dev/null 2>&1; then echo git; else echo nogit; fi',
    'if [ ! -d "$1" ] || [ -z "$(ls -A "$1" 2>/dev/null)" ]; then echo empty; exit 0; fi',
    'if [ ! -d "$1/.git" ] || ! command -v git >/dev/null 2>&1; then echo files; exit 0; fi',
    'if ! s=$(git -C "$1" status --porcelain 2>/dev/null); then echo dirty; exit 0; fi',
    'if [ -n "$s" ]; then echo dirty; else echo clean; fi',
    'git -C "$1" rev-parse --verify --quiet HEAD 2>/dev/null || true',
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir];
}

export function parseProbe(out: string): GuestState | undefined {
  const [g, t, h] = out.trim().split('\n');
  if ((g !== 'git' && g !== 'nogit') || !['empty', 'clean', 'dirty', 'files'].includes(t ?? '')) return undefined;
  return {
    git: g === 'git',
    target: t as GuestState['target'],
    ...(h && /^[0-9a-f]{40,64}$/.test(h) ? { head: h } : {}),
  };
}

/** Step 1 (stdin: the pack): a fresh repository in `<dir>.banger-new` holding the shipped objects. */
export function receivePackArgv(dir: string): string[] {
  const script = [
    'set -e',
    'rm -rf -- "$1.banger-new"',
    'mkdir -p -- "$1.banger-new"',
    'cd -- "$1.banger-new"',
    'git init -q',
    'git index-pack --stdin >/dev/null',
  ].join('\n');
  return ['sh', '-c', script, 'sh', dir];
}

export interface FinishArgs {
  dir: string;
  commit: string;
  branch: string | undefined;
  checkout: boolean;
  identity: { name: string; email: string };
}

/**
 * Step 2 (stdin: a tar of the files plus .git/config and .git/shallow): HEAD
 * and the branch, the index (from the commit; refreshed so `git status`
 * compares contents), the user's global identity, then the swap into place.
 */
export function finishArgv(a: FinishArgs): string[] {
  const script = [
    'set -e',
    'cd -- "$1.banger-new"',
    'tar -x -f -',
    'if [ -n "$3" ]; then git update-ref "refs/heads/$3" "$2"; git symbolic-ref HEAD "refs/heads/$3";',
    'else git update-ref --no-deref HEAD "$2"; fi',
    'if [ "$4" = checkout ]; then git reset -q --hard; else git read-tree HEAD; git update-index -q --refresh >/dev/null || true; fi',
    'if [ -n "$5" ]; then git config --global user.name "$5"; fi',
    'if [ -n "$6" ]; then git config --global user.email "$6"; fi',
    'cd /',
    'rm -rf -- "$1"',
    'mv -- "$1.banger-new" "$1"',
  ].join('\n');
  return [
    'sh',
    '-c',
    script,
    'sh',
    a.dir,
    a.commit,
    a.branch ?? '',
    a.checkout ? 'checkout' : 'worktree',
    a.identity.name,
    a.identity.email,
  ];
}

/** Removes a half-built `<dir>.banger-new` after a failed ship. */
export function cleanupArgv(dir: string): string[] {
  return ['sh', '-c', 'rm -rf -- "$1.banger-new"', 'sh', dir];
}
