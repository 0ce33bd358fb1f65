import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SshInfo } from '../api/methods.js';
import { sshArgv } from './argv.js';
import { shellJoin, shellQuote } from './quote.js';

test('shell quoting', () => {
  const cases: [string, string][] = [
    ['echo', 'echo'],
    ['a b', "'a b'"],
    ['$HOME', "'$HOME'"],
    ["x'y", `'x'"'"'y'`],
    ['', "''"],
    ['%s\\n', "'%s\\n'"],
    ['a;b', "'a;b'"],
    ['*', "'*'"],
    ['--flag=1', '--flag=1'],
  ];
  for (const [arg, want] of cases) assert.equal(shellQuote(arg), want, arg);
  assert.equal(shellJoin(['sh', '-c', 'echo hi; exit 42']), "sh -c 'echo hi; exit 42'");
});

const info: SshInfo = {
  name: 'dev',
  host: '127.0.0.1',
  port: 40022,
  user: 'root',
  key: '/s/id',
  known_hosts: '/s/kh',
  host_key_alias: 'dev.vm',
};

test('ssh argv: own key, known_hosts keyed by alias, no user config', () => {
  const argv = sshArgv('ssh', info, { batch: true, remoteCommand: 'true' });
  const joined = argv.join(' ');
  for (const want of [
    '-F none',
    'IdentityFile=/s/id',
    '-p 40022',
    'HostKeyAlias=dev.vm',
    'UserKnownHostsFile=/s/kh',
    'StrictHostKeyChecking=accept-new',
    'BatchMode=yes',
  ]) {
    assert.ok(joined.includes(want), want);
  }
  assert.deepEqual(argv.slice(-3), ['root@127.0.0.1', '--', 'true']);
});

test('ssh argv: tty flags', () => {
  assert.ok(sshArgv('ssh', info, { tty: true }).includes('-tt'));
  assert.ok(sshArgv('ssh', info, { tty: false }).includes('-T'));
  const plain = sshArgv('ssh', info);
  assert.ok(!plain.includes('-tt') && !plain.includes('-T'));
  assert.equal(plain.at(-1), 'root@127.0.0.1');
});
