import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WorkspacePlan } from '../../../workspace/preflight.js';
import { unpackArgv, unpackFailure } from '../../session/workspace-ship.js';
import { dryRunResult, remoteCommand, untrackedNotice } from './workspace.js';

const plan = (over: Partial<WorkspacePlan> = {}): WorkspacePlan => ({
  root: '/src/app',
  head: 'a'.repeat(40),
  files: ['a.txt', 'dir/b c.txt'],
  includeUntracked: false,
  skippedUntracked: 0,
  untracked: [],
  ...over,
});

test('remoteCommand: the command (or a login shell) in the workspace, quoted exactly', () => {
  const cases: [string[] | undefined, [string, string][], string | undefined, string | undefined][] = [
    [undefined, [], undefined, undefined],
    [['make', 'test'], [], undefined, 'make test'],
    [['sh', '-c', "echo 'x'"], [], '/root/repo', `cd /root/repo && sh -c 'echo '"'"'x'"'"''`],
    [undefined, [], '/root/repo', 'cd /root/repo && exec "${SHELL:-/bin/sh}" -l'],
    [[], [], '/root/my repo', `cd '/root/my repo' && exec "\${SHELL:-/bin/sh}" -l`],
  ];
  for (const [cmd, env, cwd, want] of cases) assert.equal(remoteCommand(cmd, env, cwd), want, JSON.stringify(cmd));
  assert.match(remoteCommand(['true'], [['K', 'v w']], '/root/repo') ?? '', /^cd \/root\/repo && .*K=.*v w.* true$/);
});

test('dryRunResult: the exact list on stdout, whether untracked files are included on stderr', () => {
  const r = dryRunResult(plan({ skippedUntracked: 2 }));
  assert.equal(r.text, 'a.txt\ndir/b c.txt\n');
  assert.match(
    r.err ?? '',
    /2 files from \/src\/app \(aaaaaaaaaaaa\).*untracked files not included \(2 left out\); no git history; nothing created/,
  );
  const history = {
    commit: 'b'.repeat(40),
    branch: 'main',
    checkout: false,
    shallow: [],
    commits: 3,
    config: '',
    identity: { name: '', email: '' },
  };
  assert.match(
    dryRunResult({ ...plan(), history }).err ?? '',
    /; git history: 3 commits up to bbbbbbbbbbbb on branch main; nothing created/,
  );
  assert.match(dryRunResult(plan({ includeUntracked: true })).err ?? '', /untracked files included;/);
  assert.match(dryRunResult(plan({ head: null, files: [] })).err ?? '', /0 files .*\(no commits\)/);
});

test('untrackedNotice: one line when untracked files were left out, nothing otherwise', () => {
  assert.equal(untrackedNotice(plan()), undefined);
  assert.equal(
    untrackedNotice(plan({ skippedUntracked: 1 })),
    'note: 1 untracked file not shipped (--include-untracked ships them)\n',
  );
  assert.match(untrackedNotice(plan({ skippedUntracked: 3 })) ?? '', /^note: 3 untracked files not shipped/);
});

test('unpackArgv passes the guest path as a parameter, never inside the script', () => {
  const argv = unpackArgv("/root/it's", false);
  assert.deepEqual(argv.slice(0, 2), ['sh', '-c']);
  assert.deepEqual(argv.slice(3), ['sh', "/root/it's", 'keep']);
  assert.doesNotMatch(argv[2] ?? '', /it's/);
  assert.match(argv[2] ?? '', /tar -x -f -$/);
  assert.equal(unpackArgv('/root/repo', true).at(-1), 'force');
});

test('unpackFailure: success, a non-empty target (hint --force), a tar error with its output', () => {
  assert.equal(unpackFailure('dev', '/root/repo', 0, ''), undefined);
  const busy = unpackFailure('dev', '/root/repo', 3, '');
  assert.equal(busy?.code, 'precondition');
  assert.match(busy?.message ?? '', /VM dev already has files at \/root\/repo/);
  assert.match(busy?.hint ?? '', /--force/);
  const bad = unpackFailure('dev', '/root/repo', 1, 'tar: short read\n');
  assert.equal(bad?.code, 'operation_failed');
  assert.match(bad?.hint ?? '', /tar: short read/);
});
