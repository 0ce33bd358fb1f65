import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { AppError } from '../errors.js';
import { NodeRunner } from '../system/node-runner.js';
import { fileList, parseIndex, preflight, splitNul, submodules } from './preflight.js';
import { packFiles } from './pack.js';

const runner = new NodeRunner();
const GIT_ID = ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'protocol.file.allow=always'];

async function git(dir: string, ...args: string[]): Promise<void> {
  await runner.check(['git', '-C', dir, ...GIT_ID, ...args]);
}

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'banger-ws-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A repo with tracked.txt, sub/deep.txt and a link, an untracked file and an ignored one. */
async function repo(t: TestContext): Promise<string> {
  const d = join(tmp(t), 'repo');
  mkdirSync(join(d, 'sub'), { recursive: true });
  await git(d, 'init', '-q');
  writeFileSync(join(d, 'tracked.txt'), 'hello\n');
  writeFileSync(join(d, 'sub', 'deep.txt'), 'deep\n', { mode: 0o755 });
  writeFileSync(join(d, '.gitignore'), 'ignored.txt\n');
  symlinkSync('tracked.txt', join(d, 'link'));
  await git(d, 'add', '-A');
  await git(d, 'commit', '-q', '-m', 'init');
  writeFileSync(join(d, 'untracked.txt'), 'new\n');
  writeFileSync(join(d, 'ignored.txt'), 'secret\n');
  return d;
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, re);
    assert.ok(e.hint, 'a hint');
    return true;
  });
}

test('splitNul and parseIndex read -z output; a path in several stages once', () => {
  assert.deepEqual(splitNul('a\0b c\0'), ['a', 'b c']);
  assert.deepEqual(splitNul(''), []);
  const idx = parseIndex(
    [
      `100644 ${'a'.repeat(40)} 0\tx y\n`,
      `160000 ${'b'.repeat(40)} 0\tmod`,
      `100644 ${'c'.repeat(40)} 1\tc`,
      `100644 ${'d'.repeat(40)} 2\tc`,
      '',
    ].join('\0'),
  );
  assert.deepEqual(idx, [
    { mode: '100644', path: 'x y\n' },
    { mode: '160000', path: 'mod' },
    { mode: '100644', path: 'c' },
  ]);
  assert.deepEqual(submodules(idx), ['mod']);
  assert.throws(() => parseIndex('garbage\0'), AppError);
});

test('fileList: tracked always, untracked only when included, sorted, each once', () => {
  const cases: [string[], string[], boolean, string[], number][] = [
    [['b', 'a'], ['c'], false, ['a', 'b'], 1],
    [['b', 'a'], ['c'], true, ['a', 'b', 'c'], 0],
    [['a'], [], false, ['a'], 0],
    [[], ['x', 'y'], false, [], 2],
    [['a'], ['a'], true, ['a'], 0],
  ];
  for (const [tracked, untracked, inc, files, skipped] of cases)
    assert.deepEqual(
      fileList(tracked, untracked, inc),
      { files, skippedUntracked: skipped },
      JSON.stringify([tracked, untracked, inc]),
    );
});

test('preflight: tracked files only by default, the untracked one counted, ignored never', async (t) => {
  const d = await repo(t);
  const p = await preflight(runner, join(d, 'sub'), { includeUntracked: false });
  assert.equal(p.root, d);
  assert.match(p.head ?? '', /^[0-9a-f]{40}$/);
  assert.deepEqual(p.files, ['.gitignore', 'link', 'sub/deep.txt', 'tracked.txt']);
  assert.equal(p.skippedUntracked, 1);
  assert.equal(p.includeUntracked, false);
});

test('preflight --include-untracked adds untracked non-ignored files, never ignored ones', async (t) => {
  const d = await repo(t);
  const p = await preflight(runner, d, { includeUntracked: true });
  assert.deepEqual(p.files, ['.gitignore', 'link', 'sub/deep.txt', 'tracked.txt', 'untracked.txt']);
  assert.equal(p.skippedUntracked, 0);
});

test('preflight refuses a bare repo, a submodule, a path outside any repo, a missing path', async (t) => {
  const base = tmp(t);
  const bare = join(base, 'bare.git');
  await runner.check(['git', 'init', '-q', '--bare', bare]);
  await rejects(preflight(runner, bare, { includeUntracked: false }), /bare\.git.* is a bare git repository/);

  const outside = join(base, 'plain');
  mkdirSync(outside);
  await rejects(preflight(runner, outside, { includeUntracked: false }), /plain.* is not inside a git repository/);
  await rejects(preflight(runner, join(base, 'nope'), { includeUntracked: false }), /nope.* does not exist/);
  writeFileSync(join(base, 'file'), '');
  await rejects(preflight(runner, join(base, 'file'), { includeUntracked: false }), /is not a directory/);

  const d = await repo(t);
  const child = await repo(t);
  await git(d, 'submodule', '-q', 'add', child, 'mod');
  await git(d, 'commit', '-q', '-m', 'sub');
  await rejects(preflight(runner, d, { includeUntracked: false }), /has submodules \(mod\)/);
});

test('packFiles streams exactly the listed files with modes and links; a deleted tracked file is left out', async (t) => {
  const d = await repo(t);
  rmSync(join(d, 'tracked.txt'));
  const { stream, done } = packFiles(d, ['link', 'sub/deep.txt', 'tracked.txt']);
  const got: { name: string; type: string; mode: number; body: string; linkname?: string }[] = [];
  const ex = extract();
  ex.on('entry', (h, s, next) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: unknown) => chunks.push(c as Buffer));
    s.on('end', () => {
      got.push({
        name: h.name,
        type: h.type ?? '',
        mode: h.mode ?? 0,
        body: Buffer.concat(chunks).toString(),
        ...(h.linkname ? { linkname: h.linkname } : {}),
      });
      next();
    });
  });
  const finished = new Promise((res, rej) => {
    ex.on('finish', () => res(undefined));
    ex.on('error', rej);
  });
  stream.pipe(ex);
  await finished;
  assert.equal(await done, 2);
  assert.deepEqual(got, [
    { name: 'link', type: 'symlink', mode: 0o777, body: '', linkname: 'tracked.txt' },
    { name: 'sub/deep.txt', type: 'file', mode: 0o755, body: 'deep\n' },
  ]);
});
