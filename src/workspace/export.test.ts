import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../errors.js';
import { NodeRunner } from '../system/node-runner.js';
import { EXPORT_EXIT, checkBaseCommit, exportArgv, exportFailure } from './export.js';

const runner = new NodeRunner();
const GIT_ID = ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid'];
const git = (dir: string, ...args: string[]): Promise<{ stdout: string }> =>
  runner.check(['git', '-C', dir, ...GIT_ID, ...args]);

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-export-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('exportArgv: the directory and the base are positional parameters, never in the script', () => {
  const a = exportArgv("/root/it's; rm -rf /", '$(reboot)');
  assert.deepEqual(a.slice(0, 2), ['sh', '-c']);
  assert.deepEqual(a.slice(3), ['sh', "/root/it's; rm -rf /", '$(reboot)']);
  assert.ok(!(a[2] as string).includes('reboot') && !(a[2] as string).includes("it's"));
  assert.equal(exportArgv('/root/repo', undefined).at(-1), '', 'no base: an empty $2');
});

test('checkBaseCommit: SHAs and simple refs pass; options and odd characters are refused, named', () => {
  for (const ok of ['a1b2c3d', 'f'.repeat(40), 'HEAD~2', 'main', 'origin/main', 'v1.0^{commit}'])
    assert.equal(checkBaseCommit(ok), ok);
  for (const bad of ['', '-p', '--output=/etc/passwd', 'a b', 'x;y', 'a\nb']) {
    assert.throws(
      () => checkBaseCommit(bad),
      (e: unknown) => e instanceof AppError && e.code === 'bad_request' && e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

test('exportFailure: each guest exit status is a clear error with a hint', () => {
  const cases: [number, string, RegExp, RegExp][] = [
    [EXPORT_EXIT.noGit, 'precondition', /has no git/, /install git/],
    [EXPORT_EXIT.notRepo, 'not_found', /dev:\/root\/repo is not a git repository/, /vm workspace prepare dev/],
    [EXPORT_EXIT.noCommits, 'precondition', /no commits/, /^$/],
    [EXPORT_EXIT.dirty, 'precondition', /uncommitted changes/, /without --base-commit/],
    [EXPORT_EXIT.badBase, 'not_found', /no commit "abc123"/, /HEAD the workspace was prepared at/],
    [EXPORT_EXIT.notAncestor, 'precondition', /not an ancestor/, /^$/],
    [1, 'operation_failed', /failed \(exit 1\)/, /boom/],
  ];
  assert.equal(exportFailure('dev', '/root/repo', 'abc123', 0, ''), undefined);
  for (const [code, want, msg, hint] of cases) {
    const e = exportFailure('dev', '/root/repo', 'abc123', code, 'fatal: boom\n');
    assert.ok(e instanceof AppError, String(code));
    assert.equal(e.code, want, String(code));
    assert.match(e.message, msg, String(code));
    assert.match(e.hint ?? '', hint, String(code));
  }
});

/** The guest script, run here against real repos (the host's git stands in for the guest's). */
async function runExport(dir: string, base?: string): Promise<{ code: number; stdout: string }> {
  const r = await runner.run(exportArgv(dir, base));
  return { code: r.code, stdout: r.stdout };
}

test('the export script: working-tree changes with new and binary files apply with git apply; the index is untouched', async (t) => {
  const d = tmp(t);
  const g = join(d, 'g');
  await runner.check(['git', 'init', '-q', g]);
  writeFileSync(join(g, 'a.txt'), 'one\n');
  writeFileSync(join(g, 'b.bin'), Buffer.from([0, 1, 2, 3]));
  writeFileSync(join(g, '.gitignore'), 'ignored\n');
  await git(g, 'add', '-A');
  await git(g, 'commit', '-q', '-m', 'init');
  await runner.check(['git', 'clone', '-q', g, join(d, 'h')]);
  writeFileSync(join(g, 'a.txt'), 'one\ntwo\n');
  writeFileSync(join(g, 'b.bin'), Buffer.from([0, 9, 8, 7, 255]));
  writeFileSync(join(g, 'new.txt'), 'new\n');
  writeFileSync(join(g, 'ignored'), 'secret\n');
  const before = (await git(g, 'status', '--porcelain')).stdout;
  const r = await runExport(g);
  assert.equal(r.code, 0);
  assert.equal((await git(g, 'status', '--porcelain')).stdout, before, "the guest's index is as it was");
  assert.ok(!r.stdout.includes('secret'), 'ignored files stay out');
  writeFileSync(join(d, 'p.patch'), r.stdout);
  await git(join(d, 'h'), 'apply', join(d, 'p.patch'));
  assert.equal(readFileSync(join(d, 'h', 'a.txt'), 'utf8'), 'one\ntwo\n');
  assert.deepEqual([...readFileSync(join(d, 'h', 'b.bin'))], [0, 9, 8, 7, 255]);
  assert.equal(readFileSync(join(d, 'h', 'new.txt'), 'utf8'), 'new\n');
});

test('the export script: --base-commit gives format-patch output; a dirty tree, an unknown base and a non-repo are refused', async (t) => {
  const d = tmp(t);
  const g = join(d, 'g');
  await runner.check(['git', 'init', '-q', g]);
  writeFileSync(join(g, 'a.txt'), 'one\n');
  await git(g, 'add', '-A');
  await git(g, 'commit', '-q', '-m', 'init');
  const base = (await git(g, 'rev-parse', 'HEAD')).stdout.trim();
  writeFileSync(join(g, 'a.txt'), 'two\n');
  assert.equal((await runExport(g, base)).code, EXPORT_EXIT.dirty);
  await git(g, 'commit', '-q', '-am', 'second change');
  const r = await runExport(g, base);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^From [0-9a-f]{40} /);
  assert.match(r.stdout, /Subject: \[PATCH\] second change/);
  assert.equal((await runExport(g, 'f'.repeat(40))).code, EXPORT_EXIT.badBase);
  assert.equal((await runExport(d)).code, EXPORT_EXIT.notRepo);
  assert.equal((await runExport(join(d, 'nope'))).code, EXPORT_EXIT.notRepo);
  const empty = join(d, 'empty');
  await runner.check(['git', 'init', '-q', empty]);
  assert.equal((await runExport(empty)).code, EXPORT_EXIT.noCommits);
});
