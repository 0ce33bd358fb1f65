import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import {
  branchOf,
  configShips,
  filterConfig,
  packRevsInput,
  parseConfigList,
  parseDepth,
  quoteConfigValue,
  renderConfig,
  shallowBoundary,
} from './gitmeta.js';

test('configShips: user.* and safe core.* only', () => {
  const cases: [string, boolean][] = [
    ['user.name', true],
    ['user.email', true],
    ['User.Email', true],
    ['user.signingkey', true],
    ['user.x.name', false],
    ['core.autocrlf', true],
    ['core.filemode', true],
    ['core.ignorecase', true],
    ['core.hookspath', false],
    ['core.fsmonitor', false],
    ['core.sshcommand', false],
    ['core.pager', false],
    ['core.editor', false],
    ['core.askpass', false],
    ['core.excludesfile', false],
    ['core.worktree', false],
    ['core.bare', false],
    ['credential.helper', false],
    ['credential.https://example.com.username', false],
    ['http.extraheader', false],
    ['http.https://example.com/.extraheader', false],
    ['remote.origin.url', false],
    ['remote.origin.fetch', false],
    ['include.path', false],
    ['includeif.gitdir:~/w/.path', false],
    ['alias.x', false],
    ['filter.lfs.process', false],
    ['url.https://tok@h/.insteadof', false],
  ];
  for (const [key, ships] of cases) assert.equal(configShips(key), ships, key);
});

test('parseConfigList + filterConfig: values with newlines and = survive, a bare key is true', () => {
  const out =
    'user.name\nA B\0remote.origin.url\nhttps://tok:x@h/r\0core.autocrlf\ninput\0user.email\na=b@c\0core.symlinks\0';
  assert.deepEqual(filterConfig(parseConfigList(out)), [
    { key: 'user.name', value: 'A B' },
    { key: 'core.autocrlf', value: 'input' },
    { key: 'user.email', value: 'a=b@c' },
    { key: 'core.symlinks', value: 'true' },
  ]);
});

test('quoteConfigValue escapes what git config reads specially', () => {
  const cases: [string, string][] = [
    ['plain', '"plain"'],
    ['a "q"', '"a \\"q\\""'],
    ['back\\slash', '"back\\\\slash"'],
    ['two\nlines', '"two\\nlines"'],
    ['tab\there', '"tab\\there"'],
    ['; # comment chars', '"; # comment chars"'],
  ];
  for (const [v, want] of cases) assert.equal(quoteConfigValue(v), want);
});

test('renderConfig: the init core section, a shipped filemode replaces the default', () => {
  assert.equal(
    renderConfig([]),
    '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n',
  );
  assert.equal(
    renderConfig([
      { key: 'core.filemode', value: 'false' },
      { key: 'user.name', value: 'Ann' },
      { key: 'core.autocrlf', value: 'input' },
    ]),
    '[core]\n\trepositoryformatversion = 0\n\tfilemode = "false"\n\tbare = false\n\tlogallrefupdates = true\n' +
      '\tautocrlf = "input"\n[user]\n\tname = "Ann"\n',
  );
});

test('shallowBoundary: commits with a parent outside the list, plus the host repo own shallow ones', () => {
  const cases: { revs: string; host?: string[]; want: string[] }[] = [
    { revs: 'c3 c2\nc2 c1\nc1\n', want: [] },
    { revs: 'c3 c2\nc2 c1\n', want: ['c2'] },
    { revs: 'm c3 s1\nc3 c2\ns1 s0\nc2 c1\n', want: ['c2', 's1'] },
    { revs: 'c3 c2\nc2\n', host: ['c2'], want: ['c2'] },
    { revs: 'c1\n', want: [] },
  ];
  for (const c of cases) assert.deepEqual(shallowBoundary(c.revs, c.host), c.want, c.revs);
});

test('packRevsInput: the tip, then one --shallow line per boundary commit', () => {
  assert.equal(packRevsInput('t', ['a', 'b']), 't\n--shallow a\n--shallow b\n');
});

test('parseDepth: default 50, whole numbers from 1', () => {
  assert.equal(parseDepth(undefined), 50);
  assert.equal(parseDepth('1'), 1);
  for (const bad of ['0', '-1', '1.5', 'x', '', '100001'])
    assert.throws(
      () => parseDepth(bad),
      (e: unknown) => e instanceof AppError && e.message.includes(JSON.stringify(bad)),
    );
});

test('branchOf', () => {
  assert.equal(branchOf('refs/heads/main\n'), 'main');
  assert.equal(branchOf('refs/heads/feat/x'), 'feat/x');
  assert.equal(branchOf('refs/tags/v1'), undefined);
  assert.equal(branchOf('HEAD'), undefined);
});
